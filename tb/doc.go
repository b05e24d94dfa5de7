// Package tb is a client for ThingsBoard's MQTT Device API.
//
// A Device keeps one MQTT session to a ThingsBoard server (or any
// compatible endpoint, such as tb/tbsim) and gives a context-aware API for
// everything the server offers a device: telemetry and client attributes,
// shared-attribute updates, attribute requests, server-side RPC handlers,
// client-side RPC, claiming, provisioning and firmware/software OTA.
//
// It speaks MQTT 5 by default (Config.Protocol; MQTT 3.1.1 too), through
// Eclipse Paho's clients behind one small transport interface: everything
// above it is shared by both versions.
//
// What sets it apart from other ThingsBoard clients:
//
//   - A QoS 1 publish is durable before it returns: it is appended to an
//     outbox (on disk when Config.Outbox.Path is set) and its Ack completes
//     only when the server has sent the PUBACK. Messages survive broker
//     outages, reconnects and process restarts (kill -9 included) and are
//     replayed in order.
//   - The connection is re-established with exponential backoff and jitter.
//     After every CONNACK the client subscribes again (ThingsBoard keeps no
//     session), requests the shared attributes its subscribers watch and
//     delivers what changed while it was offline, and re-sends the requests
//     (attribute requests, OTA chunks) that are still waiting. A
//     client-side RPC is sent at most once (the rule chain runs every copy):
//     its connection lost, it fails with ErrOutcomeUnknown.
//   - The server's answers are acted on: an MQTT 5 PUBACK 0x97, 0x80 or
//     0x83 (and DISCONNECT 0x96, 0x97) keeps the message and sends it again
//     after a back-off; PUBACK 0x99 or 0x90 — or, under MQTT 3.1.1, a
//     connection closed on the same message three times — moves it to a
//     bounded dead-letter store (in the outbox file) so that the messages
//     behind it go on, and fails its Ack with a *DeadLetterError.
//   - Every call that waits takes a context; requests without a deadline get
//     Config.RequestTimeout.
//   - Handlers never run on the MQTT library's network goroutine. A handler
//     that panics is recovered and reported (an RPC gets an error reply), and
//     a slow one is reported; neither stops the client.
//   - The limits the server reports through getSessionLimits (payload size,
//     message, telemetry-message and data-point rates) are honoured with
//     token buckets: bursts up to each window's capacity, then 98% of the
//     sustained rate, a margin for network jitter (ThingsBoard measures on
//     arrival and closes the connection of a device over its limit). A
//     gateway's sub-device limits are one bucket for all its sub-devices,
//     as the server keeps them.
//
// Lifecycle: NewDevice validates the configuration and opens the outbox (no
// network I/O); Connect starts the connection loop and waits for the first
// CONNACK; Close flushes the outbox as far as its context allows and
// disconnects. Anything still in the outbox is sent on the next start.
package tb
