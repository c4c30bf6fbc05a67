/**
 * Multipart checkpoints in localStorage, so that a reloaded page given the same file again
 * resumes its upload instead of starting over.
 */

/**
 * What is kept of an ali-oss checkpoint: everything but the File itself.
 * @typedef {object} SavedCheckpoint
 * @property {1} v
 * @property {string} key  the object key
 * @property {string} uploadId
 * @property {number} partSize
 * @property {number} fileSize
 * @property {AliOss.DonePart[]} doneParts
 * @property {string} fileName
 * @property {number} lastModified
 * @property {string} savedAt
 */

/**
 * A saved checkpoint as `list` gives it, with the storage key that `remove` takes.
 * @typedef {SavedCheckpoint & {storageKey: string}} StoredCheckpoint
 */

/** Multipart checkpoints in localStorage, per user prefix and file (name, size, mtime). */
export class CheckpointStore {
  /**
   * @param {Storage | null} storage  null keeps nothing (no resume)
   * @param {string} prefix  of every storage key
   */
  constructor(storage, prefix) {
    this.storage = storage;
    this.prefix = prefix;
  }

  /** @param {File} file */
  static fingerprint(file) {
    return JSON.stringify([file.name, file.size, file.lastModified || 0]);
  }

  /**
   * @param {string} userPrefix
   * @param {File} file
   */
  _key(userPrefix, file) {
    return `${this.prefix}${userPrefix}:${CheckpointStore.fingerprint(file)}`;
  }

  /**
   * The checkpoint saved for this user and file, or null.
   * @param {string} userPrefix
   * @param {File} file
   * @returns {SavedCheckpoint | null}
   */
  load(userPrefix, file) {
    if (!this.storage) return null;
    try {
      const saved = JSON.parse(this.storage.getItem(this._key(userPrefix, file)) || 'null');
      if (saved && saved.fileSize === file.size && saved.uploadId && saved.key) return saved;
    } catch {
      // a corrupt entry is as good as none
    }
    return null;
  }

  /**
   * @param {File} file
   * @param {AliOss.Checkpoint} checkpoint
   * @returns {SavedCheckpoint}
   */
  static entry(file, checkpoint) {
    return {
      v: 1,
      key: checkpoint.name,
      uploadId: checkpoint.uploadId,
      partSize: checkpoint.partSize,
      fileSize: checkpoint.fileSize,
      doneParts: checkpoint.doneParts.map((p) => ({ number: p.number, etag: p.etag })),
      fileName: file.name,
      lastModified: file.lastModified || 0,
      savedAt: new Date().toISOString(),
    };
  }

  /**
   * @param {string} userPrefix
   * @param {File} file
   * @param {AliOss.Checkpoint} checkpoint
   */
  save(userPrefix, file, checkpoint) {
    if (!this.storage) return;
    const entry = CheckpointStore.entry(file, checkpoint);
    try {
      this.storage.setItem(this._key(userPrefix, file), JSON.stringify(entry));
    } catch {
      // storage full or disabled: the upload still works, it just cannot resume
    }
  }

  /**
   * @param {string} userPrefix
   * @param {File} file
   */
  clear(userPrefix, file) {
    if (this.storage) this.storage.removeItem(this._key(userPrefix, file));
  }

  /**
   * Every saved checkpoint of one user.
   * @param {string} userPrefix
   * @returns {StoredCheckpoint[]}
   */
  list(userPrefix) {
    if (!this.storage) return [];
    const head = `${this.prefix}${userPrefix}:`;
    /** @type {StoredCheckpoint[]} */
    const entries = [];
    for (let i = 0; i < this.storage.length; i += 1) {
      const storageKey = this.storage.key(i);
      if (!storageKey || !storageKey.startsWith(head)) continue;
      try {
        // The key was just listed, so it has a value.
        const value = /** @type {string} */ (this.storage.getItem(storageKey));
        entries.push({ storageKey, ...JSON.parse(value) });
      } catch {
        // skip corrupt entries
      }
    }
    return entries;
  }

  /** @param {string} storageKey */
  remove(storageKey) {
    if (this.storage) this.storage.removeItem(storageKey);
  }
}
