// Package web serves the browser editor and the editor API over a running
// flow engine: the embedded static editor, a WebSocket channel (/api/ws) that
// carries commands with request ids and the engine's events, a REST mirror of
// the same commands for scripts, /healthz and Prometheus /metrics.
//
// The API is specified in docs/editor-api.md. The server reaches the engine
// only through the [Engine] interface, which *engine.Engine satisfies.
//
// Security: optional authentication (a bearer token and/or a user with a
// bcrypt password hash, and session cookies from /api/login), an Origin
// check on the WebSocket upgrade and on every state-changing request, no CORS
// headers, and write-only secrets: flows sent out hold
// engine.SecretPlaceholder in place of every secret value.
package web
