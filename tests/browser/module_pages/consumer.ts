// A TypeScript frontend using the npm package: test_module_cross_origin.py type-checks it with
// `tsc --noEmit --strict` against the installed tarball's declarations, then runs it in Chromium.
import { Status, Uploader } from 'ossgate-upload';
import type { OssgateError, Upload, UploadResult, UploadStatus } from 'ossgate-upload';

export interface Outcome {
  status: UploadStatus;
  fraction: number;
  key: string | null;
  recordId: number | null;
  statuses: UploadStatus[];
  error: string | null;
}

/** Upload one file through the ossgate at `baseUrl` and say how it went. */
export async function uploadOne(file: File, baseUrl: string, token: string): Promise<Outcome> {
  const uploader = new Uploader({ baseUrl, getBearerToken: async () => token });
  const [upload]: Upload[] = uploader.add([file]);
  const statuses: UploadStatus[] = [upload.status];
  upload.addEventListener('change', () => {
    if (statuses[statuses.length - 1] !== upload.status) statuses.push(upload.status);
  });
  const settled: Upload = await upload.done;
  const fraction: number = settled.fraction;
  const result: UploadResult | null = settled.status === Status.DONE ? settled.result : null;
  const error: OssgateError | null = settled.error;
  return {
    status: settled.status,
    fraction,
    key: result ? result.key : null,
    recordId: result?.data?.recordId ?? null,
    statuses,
    error: error ? `${error.kind}: ${error.message}` : null,
  };
}

/**
 * Misuse the declarations must catch: were any of these types `any`, the directive above it
 * would be unused, itself an error (TS2578), and the check would fail.
 */
export function misuse(upload: Upload): void {
  // @ts-expect-error getBearerToken is required
  new Uploader({ baseUrl: 'https://ossgate.example/' });
  // @ts-expect-error add takes files, not one file
  new Uploader({ getBearerToken: () => null }).add(upload.file);
  // @ts-expect-error fraction is a number
  const percent: string = upload.fraction;
  // @ts-expect-error no such status
  if (upload.status === 'finished') return;
  // @ts-expect-error done resolves with the Upload, which has no `url`
  void upload.done.then((settled) => settled.url);
  // @ts-expect-error the kinds of OssgateError are a closed list
  if (upload.error?.kind === 'timeout') return;
  void percent;
}
