/**
 * The part of the ali-oss Browser.js bundle (window.OSS; ossgate serves it from static/vendor/)
 * that ossgate-upload.js uses: the client options it sets, the methods it calls and the
 * members it replaces. Not a full description of ali-oss.
 */
declare namespace AliOss {
  /** The three keys of an STS grant that ali-oss signs with. */
  interface StsKeys {
    accessKeyId: string;
    accessKeySecret: string;
    stsToken: string;
  }

  interface ClientOptions extends StsKeys {
    region: string;
    bucket: string;
    secure: boolean;
    endpoint?: string;
    authorizationV4: boolean;
    refreshSTSToken: () => Promise<StsKeys>;
    refreshSTSTokenInterval: number;
    timeout: number;
  }

  /** ali-oss's `urllib` option: the HTTP client it sends every request through. */
  interface HttpClient {
    request(url: string, params: object): Promise<unknown>;
  }

  /** options.callback of put and multipartUpload (the grant's callback parameters). */
  interface Callback {
    url: string;
    host?: string;
    body: string;
    contentType?: string;
    callbackSNI?: boolean;
    customValue?: Record<string, string>;
  }

  interface UploadOptions {
    mime?: string;
    timeout?: number;
    callback?: Callback;
  }

  /** A part of a multipart upload that OSS has (its number and ETag). */
  interface DonePart {
    number: number;
    etag: string;
  }

  /** The state of a multipart upload, given to `progress` after every part. */
  interface Checkpoint {
    file: Blob;
    name: string;
    fileSize: number;
    partSize: number;
    uploadId: string;
    doneParts: DonePart[];
  }

  interface MultipartOptions extends UploadOptions {
    partSize?: number;
    parallel?: number;
    checkpoint?: Checkpoint;
    /** `checkpoint` is missing on the last call, after CompleteMultipartUpload. */
    progress?: (fraction: number, checkpoint?: Checkpoint) => Promise<void> | void;
  }

  interface Response {
    status: number;
    headers: Record<string, string | undefined>;
  }

  /** What `request` is given (`x-oss-callback` is among the headers of a callback upload). */
  interface RequestParams {
    headers?: Record<string, string | undefined>;
  }

  /** What `request` answers: `data` is the body (a string from XhrTransport). */
  interface RequestResult {
    status: number;
    data: unknown;
  }

  interface Client {
    options: ClientOptions;
    urllib: HttpClient;
    /** When the credentials in `options` were fetched; ali-oss refreshes from it. */
    stsTokenFreshTime: Date;
    /** How a part's bytes are read (ali-oss copies them into a Buffer; ossgate slices). */
    _createBuffer: (file: Blob, start: number, end: number) => Promise<Blob>;
    /** Signs and sends one request; every other method goes through it. */
    request: (params: RequestParams) => Promise<RequestResult>;
    put(
      name: string,
      file: Blob,
      options?: UploadOptions,
    ): Promise<{ res: Response; data?: unknown }>;
    multipartUpload(
      name: string,
      file: Blob,
      options?: MultipartOptions,
    ): Promise<{ res: Response; etag?: string; data?: unknown }>;
    abortMultipartUpload(name: string, uploadId: string): Promise<unknown>;
    /** Start no more parts of the multipart uploads in progress. */
    cancel(): void;
  }

  type Constructor = new (options: ClientOptions) => Client;
}
