/// <reference path="./ali-oss.d.ts" />
/**
 * The global the ali-oss Browser.js bundle defines (the module reads it as the default of its
 * `OSS` option). Apart from ali-oss.d.ts, which the npm package ships, because only the
 * module's own code reads the global.
 */

/** Set by the bundle's classic <script>; missing when it did not load. */
declare var OSS: AliOss.Constructor | undefined;
