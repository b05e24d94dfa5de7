// Package http holds the HTTP connector: http-in (an endpoint on its own
// listener that takes JSON posts from devices, with a token check, like the
// ThingsBoard IoT Gateway's REST connector) and http-request (calls a REST
// API on a schedule or for every message and emits the JSON answer).
// Bodies are bounded in size and every request in time.
package http
