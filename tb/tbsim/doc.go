// Package tbsim is a ThingsBoard-compatible MQTT endpoint for tests, demos
// and offline work. It is not a mock: it behaves like ThingsBoard's MQTT
// transport (see docs/thingsboard-mqtt-protocol.md, §6 "emulator MUST"), so
// the tbflow client and the official Python SDK work against it unchanged.
//
// The broker underneath (mochi-mqtt) only parses and writes packets; tbsim
// decides everything else and never routes messages between clients: every
// device uses the same "v1/devices/me/..." topic names, so every reply goes
// to the one connection it belongs to.
//
// # Emulated
//
//   - MQTT 3.1.1 and 5 (3.1 too), plain and TLS. CONNACK carries no
//     properties and sessionPresent = !cleanSession; no session state is
//     kept across connections.
//   - Authentication: access token as user name (any password and client
//     id); MQTT basic credentials (client id only, user name + password,
//     client id + user name + password, with ThingsBoard's lookup order);
//     X.509 client certificates on the TLS listener (credentials id = SHA3-256
//     hex of the certificate's Base64 DER); user name or client id
//     "provision" opens a provisioning-only session. Failures get
//     ThingsBoard's codes (MQTT 5: 0x86, 0x85, 0x87; 3.1.1: 5, 2, 5; MQTT 5
//     also gets a DISCONNECT) and are closed.
//   - One session per device: a new connection closes the older one (MQTT 5
//     DISCONNECT 0x8E). Client ids are not tracked.
//   - SUBSCRIBE: only ThingsBoard's exact filters, granted min(QoS, 1);
//     others fail (0x80 / MQTT 5 0x8F) and the connection stays up.
//     Attribute and RPC subscriptions are registered before the SUBACK.
//   - Uplinks: telemetry and client attributes with ThingsBoard's value
//     typing, attribute requests (v1 and v2 families), RPC replies,
//     client-side RPC (getSessionLimits answered at once), claiming, OTA
//     chunk requests; the error matrix of §1.6 (unknown topic: PUBACK, MQTT 5
//     0x90; bad payload: close, MQTT 5 PUBACK 0x99 or DISCONNECT 0x99 for
//     QoS 0; runtime errors: close, MQTT 5 DISCONNECT 0x8B; rate limit: close,
//     MQTT 5 DISCONNECT 0x83). PUBACK is sent after processing; "[]" is
//     never acknowledged. QoS 2 publishes are answered with a PUBACK.
//   - Downlinks go to one connection, at the granted QoS of a matching
//     subscription or QoS 1, without retain or DUP, packet ids 1..65535.
//     Responses need no subscription; shared-attribute updates and
//     server-side RPCs go only to subscribed sessions.
//   - Shared attributes: {key: value} and {"deleted": [...]} pushes, never
//     replayed. Server-side RPC: per-device ids from 0, queued until an RPC
//     subscription or expiry, every pending request re-sent on each RPC
//     subscription (BURST), one-way calls done once sent.
//   - Provisioning (allow-create, check-pre-provisioned; ACCESS_TOKEN,
//     MQTT_BASIC, X509_CERTIFICATE; gateway flag) with ThingsBoard's
//     response texts; the session is closed ProvisionCloseAfter after
//     success.
//   - OTA: assigning a package sets target_* telemetry, <kind>_state QUEUED
//     then INITIATED, and the shared attributes <kind>_title, _version,
//     (_tag), _size, _checksum_algorithm, _checksum (MD5, SHA256, SHA384,
//     SHA512, CRC32, MURMUR3_32, MURMUR3_128 formatted as Guava does); chunk
//     requests, remembered chunk sizes, PAYLOAD_TOO_LARGE / NOT_FOUND on
//     v2/fw/error followed by a disconnect.
//   - Packets with a remaining length over MaxPayloadSize (65536) close the
//     connection (MQTT 5: DISCONNECT 0x81 first; above 16 MiB mochi closes
//     without it). A topic name with wildcards closes it too (MQTT 5 0x81);
//     $SYS/... is an unknown topic. A client that is not MQTT 5 and sends a
//     bad protocol name or level gets CONNACK 1.
//   - Rate limits "cap:seconds,..." as DefaultTransportRateLimitService
//     checks them: a message with data points (telemetry, client
//     attributes) takes one telemetry message and its points, any other
//     (requests, RPC, claims, session open and close, attribute and RPC
//     subscriptions) one message. A device session over its limit is
//     closed (MQTT 5 DISCONNECT 0x83); a session open over it gets CONNACK
//     0x9F (3.1.1: 3); a subscription over it is granted but lost.
//   - Device profiles (AddDeviceProfile, by the device's Type): custom
//     telemetry/attributes topic filters (the default topics become
//     unknown topics), PROTOBUF (every payload on the profile's topics
//     fails to parse, as JSON does on ThingsBoard; …/j topics take JSON),
//     sendAckOnValidationException (3.1.1: PUBACK instead of close).
//   - Messages the server takes and discards (unknown topics, invalid
//     payloads that are acknowledged, gateway messages over the limit,
//     gateway topics from a plain device, lost subscriptions) are recorded
//     per device: Dropped, newest first, at most 1000.
//   - RenameDevice and DeleteDevice; the gateway that last connected the
//     device gets the persistent one-way RPCs gateway_device_renamed
//     ({"old":"new"}) / gateway_device_deleted ("name") on its own RPC
//     topic. Values of one key in the same millisecond overwrite.
//   - X.509: the CertificateRequest lists the server's own chain, so Go
//     clients send a self-signed device certificate only through
//     GetClientCertificate.
//   - No keep-alive enforcement; a connection without any packet for 10
//     minutes is dropped (ThingsBoard's inactivity timeout).
//   - The Gateway API (§3) for devices added with Gateway: true: connect
//     (get-or-create by name with the given type), disconnect, telemetry,
//     client attributes, attribute requests ("value" / "values" / neither),
//     RPC replies and claims on v1/gateway/...; uplinks for a sub-device not
//     connected in the session connect it first (type "default"). Connected
//     sub-devices get {"device","data"} shared-attribute updates and
//     {"device","data":{"id","method","params"}} RPCs (per-device ids, queued
//     until connected) without any gateway subscription. Wrong-shape JSON:
//     PUBACK (MQTT 5 0x83) and the connection is closed; a per-device
//     conversion error: MQTT 5 PUBACK 0x99, 3.1.1 closed; one PUBACK per
//     message; unknown v1/gateway/ topics: 0x90. Sub-devices end with the
//     gateway connection and hold the device's one session. The gateway's
//     rateLimits limit its own traffic; gatewayRateLimits are one bucket
//     shared by all its sub-devices (every sub-device connect is two
//     messages: get-or-create and session open). A sub-device message over
//     it: PUBACK 0x97 (3.1.1: an ordinary PUBACK for a dropped message),
//     then close, no notice; a connect over it: close without PUBACK (MQTT 5
//     DISCONNECT 0x8B).
//     Sub-devices are ordinary devices to the Go and HTTP APIs (by name);
//     SubDevices, SetGatewayRateLimits and DropSubDevice are gateway-only.
//
// # Not emulated
//
//   - Protobuf decoding: the …/p topics are answered as unknown topics
//     (PUBACK, MQTT 5 0x90) and the …/p filters are rejected; a PROTOBUF
//     profile refuses every payload; custom attribute subscribe topics.
//   - Gateway extras: gatewayMetrics aggregation of telemetry "metadata"
//     (it is stripped), device-count limits, Protobuf gateway payloads.
//   - JSON is parsed strictly (Gson's lenient parser also accepts unquoted
//     names, single quotes, comments); numeric strings with non-ASCII digits
//     stay strings; numbers whose plain form exceeds 4096 digits are
//     rejected as malformed.
//   - IP blocking, tenant rate limits, RPC delivery retries and
//     persistent RPCs other than the gateway notices, the
//     pre-CONNACK queue limit, the provisionState server attribute beyond
//     its effect on check-pre-provisioned, X.509 chain auto-provisioning,
//     external-URL OTA packages, Sparkplug.
//   - Topic aliases are refused (MQTT 5 DISCONNECT 0x94) where ThingsBoard
//     would treat the publish as an unknown topic.
//
// # HTTP API
//
// With Options.HTTPAddr set, a JSON API for people and tests (listening only
// where told, 127.0.0.1 by default; request bodies are size-limited; errors
// are {"error": "..."} with 400, 404, 409, 413 or 504):
//
//	GET    /healthz
//	GET    /api/devices                              list (with "connected", "lastGateway")
//	POST   /api/devices                              {"name","type"|"profile","gateway","token","clientId","username","password","certPem"}
//	POST   /api/devices/{name}/rename                {"name": "new"}
//	DELETE /api/devices/{name}
//	GET    /api/devices/{name}/dropped               discarded messages, newest first
//	PUT    /api/devices/{name}/rate-limits           {"messages","telemetryMessages","telemetryDataPoints"}
//	GET    /api/devices/{name}/telemetry             latest values; ?key=k for the history of k
//	GET    /api/devices/{name}/attributes?scope=client|shared
//	POST   /api/devices/{name}/attributes/shared     {"k": v} → pushed to the device
//	DELETE /api/devices/{name}/attributes/shared?keys=a,b
//	POST   /api/devices/{name}/rpc                   {"method","params","oneWay","timeoutMs"} → the reply (504 on timeout)
//	PUT    /api/devices/{name}/ota/{fw|sw}?title=&version=&tag=&algorithm=   body = package bytes
//	DELETE /api/devices/{name}/ota/{fw|sw}
//	GET    /api/devices/{name}/claims
//	POST   /api/provision-profiles                   {"key","secret","type","strategy"}
//	POST   /api/device-profiles                      {"name","telemetryTopic","attributesTopic","payloadType","sendAckOnValidationException"}
//	GET    /api/device-profiles
//	PUT    /api/device-profiles/{name}/ota/{fw|sw}?title=&version=&tag=&algorithm=   body = package bytes
//	DELETE /api/device-profiles/{name}/ota/{fw|sw}
//	GET    /api/gateways/{name}/devices              sub-devices connected through it
//	DELETE /api/gateways/{name}/devices/{device}?reason=150   DropSubDevice (default 128)
//	PUT    /api/gateways/{name}/rate-limits          {"gateway":{…},"devices":{…}} (flat: devices)
//
// Gateway sub-devices are addressed by name through the /api/devices/{name}
// endpoints like any device (URL-encode spaces); GET /api/devices lists them
// with "lastGateway".
package tbsim
