/** What the upload page (static/app.js) reads from and leaves on `window`. */
interface Window {
  /** Options over the page's own, set before app.js runs (tests, the benchmark). */
  ossgateUploadOptions?: Partial<import('../ossgate-upload.js').UploaderOptions>;
  /** The live uploader, for the console and the tests. */
  ossgatePage?: {
    uploader: import('../ossgate-upload.js').Uploader;
    language: string;
    messages: typeof import('../i18n.js').MESSAGES;
  };
}
