/**
 * The upload page's text in English and Chinese, chosen from the browser's languages.
 *
 * Static text in the template carries `data-i18n="key"` and is replaced on load; text the
 * page builds uses `t(key, values)`. Backticks in a message mark code (`ossgate cors apply`),
 * which the page renders in <code>.
 */

/**
 * One language's messages by key; `{name}` is replaced by the value of that name.
 * @typedef {Readonly<Record<string, string>>} MessageTable
 */

/**
 * Translates a message key, filling in `{name}` placeholders from `values`.
 * @typedef {(key: string, values?: Record<string, unknown>) => string} Translate
 */

/** @type {MessageTable} */
const en = {
  skip: 'Skip to uploads',
  tagline: 'Upload straight to Alibaba Cloud OSS',
  signOut: 'Sign out',
  signInTitle: 'Sign in',
  username: 'User name',
  password: 'Password',
  signIn: 'Sign in',
  signingIn: 'Signing in…',
  badLogin: 'Unknown user name or wrong password.',
  waitingForToken:
    'Waiting for the application to sign you in (sessionStorage `ossgate.token` or a postMessage).',
  uploadTitle: 'Upload files',
  dropHere: 'Drop files here',
  orPick: 'or press to choose files',
  limits: 'Up to {size} per file · {types}',
  anyType: 'any type',
  uploadingAs: 'Uploading to {prefix}',
  destinationLabel: 'Upload to',
  destinationOption: '{name}: {kinds} up to {size}',
  rowDestination: 'To {name}',
  colDestination: 'Destination',
  kind_any: 'any files',
  kind_image: 'images',
  kind_video: 'videos',
  kind_audio: 'audio files',
  kind_text: 'text files',
  kind_pdf: 'PDF files',
  listSeparator: ', ',
  modeLabel: 'Upload method',
  mode_auto: 'Automatic',
  mode_sts: 'Direct (temporary credentials)',
  mode_form: 'Form signed by the server',
  mode_help_sts:
    'Your browser signs each upload with temporary credentials. Files from {size} go in parts and can resume after a reload.',
  mode_help_form:
    'The server signs a form for each file that fixes its name, size and type. Each file goes in one request (no resume).',
  mode_help_auto_types:
    'Files of type {types} under {size} go as forms signed by the server; the others go direct.',
  mode_help_auto_all:
    'Files under {size} go as forms signed by the server; larger ones go direct, in parts that can resume.',
  mode_help_auto_custom: 'Each file goes either as a form signed by the server or direct, as this page is set up.',
  method_form: 'Signed form',
  interruptedTitle: 'Interrupted uploads',
  interruptedHelp: 'Choose the same file again to continue where it stopped.',
  interruptedEntry: '{name} · {size} · {done} of {total} parts sent',
  discard: 'Discard',
  myUploads: 'My uploads',
  refresh: 'Refresh',
  noUploads: 'Nothing uploaded yet.',
  colFile: 'File',
  colSize: 'Size',
  colType: 'Type',
  colWhen: 'Uploaded',
  colRecord: 'Record',
  more: 'Show more',
  emulatorTitle: 'Local emulator',
  queueLabel: 'Uploads',
  cancel: 'Cancel',
  retry: 'Retry',
  resume: 'Resume',
  cancelName: 'Cancel {name}',
  retryName: 'Retry {name}',
  status_queued: 'Waiting',
  status_uploading: 'Uploading',
  status_done: 'Done',
  status_unconfirmed: 'Stored, not confirmed',
  status_rejected: 'Rejected',
  status_error: 'Failed',
  status_cancelled: 'Cancelled',
  cancelling: 'Stopping after the parts in flight…',
  confirming: 'Stored; asking the server to confirm it…',
  resuming: 'Resuming: {done} of {total} parts were already sent',
  parts: '{done} / {total} parts',
  record: 'Record #{id}',
  doneNoCallback: 'Uploaded (no callback configured, so not recorded)',
  unconfirmedHelp:
    'The file is in the bucket, but the server could not confirm it yet. It will be checked shortly, by itself.',
  err_rejected: 'Rejected: {message}',
  err_too_large: 'Too large: {size} is over the {max} limit. Nothing was sent.',
  err_type_not_allowed: 'Files of type {type} are not accepted here. Nothing was sent.',
  err_too_large_to: 'Too large for {destination}: {size} is over its {max} limit. Nothing was sent.',
  err_type_not_allowed_to: 'Files of type {type} cannot go to {destination}. Nothing was sent.',
  err_destination_forbidden: 'Your account may not upload to {destination}. Nothing was sent.',
  err_unknown_destination: 'There is no destination named {destination}. Nothing was sent.',
  err_empty_file: 'An empty file cannot be sent as a form. Choose the direct method for it.',
  err_cors:
    'The bucket does not accept uploads from this page ({origin}): its CORS rules are not set. An administrator should run `ossgate cors apply`.',
  err_cors_expose_etag:
    'The bucket CORS rule does not expose the ETag header, which large uploads need. Run `ossgate cors apply`.',
  err_session: 'Your session has expired. Sign in again, then press Retry.',
  err_denied: 'Access denied: the bucket refused this upload ({code}).',
  err_network: 'The network connection was lost. Check your connection, then press Retry.',
  err_rate_limited: 'Too many requests. Wait {seconds} s, then press Retry.',
  err_unavailable: 'The service is unavailable right now. Try again shortly.',
  err_credentials: 'The upload credentials were refused ({code}). Press Retry.',
  err_server: 'The upload failed: {message}',
  sdkMissing:
    'The ali-oss browser bundle did not load. Run `make` (it copies it to static/vendor/), or check OSSGATE_OSS_SDK_URL.',
  uploadsFailed: 'Your uploads could not be listed: {message}',
  speed: '{rate}/s',
};

/** @type {MessageTable} */
const zh = {
  skip: '跳到上传',
  tagline: '直接上传到阿里云 OSS',
  signOut: '退出登录',
  signInTitle: '登录',
  username: '用户名',
  password: '密码',
  signIn: '登录',
  signingIn: '正在登录…',
  badLogin: '用户名或密码错误。',
  waitingForToken: '正在等待应用完成登录（sessionStorage `ossgate.token` 或 postMessage）。',
  uploadTitle: '上传文件',
  dropHere: '将文件拖到这里',
  orPick: '或点击选择文件',
  limits: '每个文件最大 {size} · {types}',
  anyType: '任意类型',
  uploadingAs: '上传到 {prefix}',
  destinationLabel: '上传到',
  destinationOption: '{name}：{kinds}，最大 {size}',
  rowDestination: '上传到 {name}',
  colDestination: '上传目标',
  kind_any: '任意文件',
  kind_image: '图片',
  kind_video: '视频',
  kind_audio: '音频',
  kind_text: '文本文件',
  kind_pdf: 'PDF 文件',
  listSeparator: '、',
  modeLabel: '上传方式',
  mode_auto: '自动',
  mode_sts: '直传（临时凭证）',
  mode_form: '服务端签名表单',
  mode_help_sts: '浏览器用临时凭证签名每次上传。{size} 及以上的文件分片上传，刷新页面后可续传。',
  mode_help_form: '服务端为每个文件签名一个表单，固定其名称、大小和类型。每个文件一次请求上传（不支持续传）。',
  mode_help_auto_types: '{size} 以下、类型为 {types} 的文件使用服务端签名表单上传，其他文件直传。',
  mode_help_auto_all: '{size} 以下的文件使用服务端签名表单上传；更大的文件直传，分片上传，可续传。',
  mode_help_auto_custom: '按本页面的设置，每个文件使用服务端签名表单上传或直传。',
  method_form: '签名表单',
  interruptedTitle: '未完成的上传',
  interruptedHelp: '再次选择同一个文件，即可从中断处继续。',
  interruptedEntry: '{name} · {size} · 已上传 {done}/{total} 个分片',
  discard: '放弃',
  myUploads: '我的上传',
  refresh: '刷新',
  noUploads: '还没有上传任何文件。',
  colFile: '文件',
  colSize: '大小',
  colType: '类型',
  colWhen: '上传时间',
  colRecord: '记录',
  more: '显示更多',
  emulatorTitle: '本地模拟器',
  queueLabel: '上传列表',
  cancel: '取消',
  retry: '重试',
  resume: '继续',
  cancelName: '取消 {name}',
  retryName: '重试 {name}',
  status_queued: '等待中',
  status_uploading: '上传中',
  status_done: '完成',
  status_unconfirmed: '已存储，未确认',
  status_rejected: '已拒绝',
  status_error: '失败',
  status_cancelled: '已取消',
  cancelling: '正在停止（等待传输中的分片完成）…',
  confirming: '已存储，正在请服务器确认…',
  resuming: '继续上传：已有 {done}/{total} 个分片',
  parts: '{done}/{total} 个分片',
  record: '记录 #{id}',
  doneNoCallback: '已上传（未配置回调，因此未记录）',
  unconfirmedHelp: '文件已存入存储桶，但服务器暂时无法确认。稍后会自动检查它。',
  err_rejected: '已拒绝：{message}',
  err_too_large: '文件过大：{size} 超过了 {max} 的限制。未发送任何数据。',
  err_type_not_allowed: '不接受 {type} 类型的文件。未发送任何数据。',
  err_too_large_to: '文件对 {destination} 来说过大：{size} 超过了 {max} 的限制。未发送任何数据。',
  err_type_not_allowed_to: '{destination} 不接受 {type} 类型的文件。未发送任何数据。',
  err_destination_forbidden: '你的账号不能上传到 {destination}。未发送任何数据。',
  err_unknown_destination: '没有名为 {destination} 的上传目标。未发送任何数据。',
  err_empty_file: '空文件不能用表单上传。请对它选择直传方式。',
  err_cors:
    '存储桶不接受来自本页面（{origin}）的上传：尚未设置 CORS 规则。请管理员运行 `ossgate cors apply`。',
  err_cors_expose_etag: '存储桶的 CORS 规则没有暴露 ETag 头，大文件上传需要它。请运行 `ossgate cors apply`。',
  err_session: '登录已过期。请重新登录，然后点击重试。',
  err_denied: '访问被拒绝：存储桶拒绝了此次上传（{code}）。',
  err_network: '网络连接已断开。请检查网络，然后点击重试。',
  err_rate_limited: '请求过于频繁。请等待 {seconds} 秒后点击重试。',
  err_unavailable: '服务暂时不可用，请稍后再试。',
  err_credentials: '上传凭证被拒绝（{code}）。请点击重试。',
  err_server: '上传失败：{message}',
  sdkMissing:
    'ali-oss 浏览器 SDK 未能加载。请运行 `make`（会复制到 static/vendor/），或检查 OSSGATE_OSS_SDK_URL。',
  uploadsFailed: '无法列出你的上传：{message}',
  speed: '{rate}/秒',
};

/** @type {Readonly<Record<string, MessageTable>>} */
export const MESSAGES = Object.freeze({ en, zh });

/**
 * `zh` for any Chinese browser language that comes first, else `en`.
 * @param {readonly string[] | null | undefined} languages  navigator.languages
 * @returns {string}
 */
export function pickLanguage(languages) {
  for (const language of languages || []) {
    const main = String(language).toLowerCase().split('-')[0];
    if (main in MESSAGES) return main;
  }
  return 'en';
}

/**
 * A translator for one language: t('limits', {size: '1 GiB'}).
 * @param {string} language
 * @returns {Translate}
 */
export function translator(language) {
  const table = MESSAGES[language] || en;
  return (key, values = {}) => {
    const text = table[key] ?? en[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
  };
}

/**
 * Set `element`'s content to `text`, with `backticked` parts in <code> (no HTML parsing).
 * @param {Element} element
 * @param {string} text
 */
export function fillText(element, text) {
  element.replaceChildren();
  String(text).split('`').forEach((part, index) => {
    if (!part) return;
    if (index % 2 === 1) {
      const code = element.ownerDocument.createElement('code');
      code.textContent = part;
      element.append(code);
    } else {
      element.append(part);
    }
  });
}

/**
 * Replace the text of every `[data-i18n]` element under `root`.
 * @param {Document} root
 * @param {Translate} t
 * @param {string} language
 */
export function translateDocument(root, t, language) {
  root.documentElement.lang = language === 'zh' ? 'zh-CN' : 'en';
  for (const element of root.querySelectorAll('[data-i18n]')) {
    fillText(element, t(/** @type {string} */ (element.getAttribute('data-i18n'))));
  }
}
