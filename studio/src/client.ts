/**
 * Calls to the studio's API (src/studio/server.ts). The session token travels in the HttpOnly cookie
 * the server set when the page was opened with ?token=; failures become {@link StudioError}s carrying
 * the server's words (message and hint).
 */
import type { ApiError } from "../../src/studio/api.js";

export class StudioError extends Error {
  constructor(readonly error: ApiError) {
    super(error.message);
  }
}

const unreachable: ApiError = {
  code: "E_NETWORK",
  message: "the studio server cannot be reached",
  hint: "is 'steadyframe studio' still running? Start it again and open the address it prints",
};

async function errorOf(res: Response): Promise<StudioError> {
  try {
    const body = (await res.json()) as { error?: ApiError };
    if (body.error) return new StudioError(body.error);
  } catch {
    // not JSON
  }
  return new StudioError({
    code: `HTTP_${res.status}`,
    message: `the server answered ${res.status} ${res.statusText}`,
    hint: null,
  });
}

export async function getJson<T>(path: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, { credentials: "same-origin" });
  } catch {
    throw new StudioError(unreachable);
  }
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as T;
}

export async function postJson<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      ...(signal ? { signal } : {}),
    });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new StudioError(unreachable);
  }
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as T;
}

/** Uploads a file with progress (XMLHttpRequest: fetch has no upload progress). */
export function upload<T>(path: string, file: File, onProgress: (fraction: number) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("X-Filename", encodeURIComponent(file.name));
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      let body: unknown;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = undefined;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body as T);
      else {
        const error = (body as { error?: ApiError } | undefined)?.error;
        reject(
          new StudioError(
            error ?? { code: `HTTP_${xhr.status}`, message: `the upload failed (${xhr.status})`, hint: null },
          ),
        );
      }
    };
    xhr.onerror = () => reject(new StudioError(unreachable));
    xhr.send(file);
  });
}

export function toApiError(e: unknown): ApiError {
  if (e instanceof StudioError) return e.error;
  return { code: "E_PAGE", message: e instanceof Error ? e.message : String(e), hint: null };
}
