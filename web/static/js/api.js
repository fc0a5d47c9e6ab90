// The page's only door to the edge: same-origin fetch with the session cookie, the CSRF header on
// every state-changing request, and the edge's error envelope turned into an ApiError.

let csrfToken = null;

export function setCsrf(token) { csrfToken = token; }

export class ApiError extends Error {
  constructor(status, body) {
    const msg = body && typeof body === "object" ? body.error || JSON.stringify(body) : String(body || status);
    super(msg);
    this.status = status;
    this.body = body;
    this.code = body && body.code;
    this.details = (body && body.details) || {};
    this.field = this.details.field || null;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const resp = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const ctype = resp.headers.get("Content-Type") || "";
  const data = ctype.includes("json") ? await resp.json().catch(() => null) : await resp.text();
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body === undefined ? {} : body);
export const del = (path) => api("DELETE", path);

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) u.set(k, v);
  const s = u.toString();
  return s ? `?${s}` : "";
}

/** PUT bytes to a signed URL with upload progress (fetch has none); resolves with the ETag header. */
export function putWithProgress(url, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded); };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.getResponseHeader("ETag") || "");
      else {
        let body = xhr.responseText;
        try { body = JSON.parse(body); } catch { /* plain text */ }
        reject(new ApiError(xhr.status, body));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, "network error during upload"));
    xhr.send(blob);
  });
}
