// Swagger UI over the edge's own OpenAPI document. "Try it out" sends the x-api-key header given
// under "Authorize", or the session cookie when this browser has signed in on the dashboard (the
// CSRF token is then added to state-changing requests from GET /api/session).
let csrf = "";
fetch("/api/session", { credentials: "same-origin" })
  .then((r) => (r.ok ? r.json() : null))
  .then((s) => { if (s) csrf = s.csrf_token; })
  .catch(() => {});

window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  requestInterceptor: (req) => {
    if (csrf && !["GET", "HEAD", "OPTIONS"].includes((req.method || "GET").toUpperCase())) {
      req.headers["X-CSRF-Token"] = csrf;
    }
    return req;
  },
});
