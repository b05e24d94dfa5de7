// Package fleet runs a tbflow box in managed mode: one tb-connection of the
// flow (manage: true) is the box's management channel to ThingsBoard.
//
//   - Flows arrive as ThingsBoard software packages (sw_title, sw_version,
//     checksum), assigned to the device or to its device profile. The
//     Manager downloads a package with the SDK's chunked, checksum-verified
//     OTA, validates it, deploys it, keeps it as the local flow file (so a
//     restart without network runs the last good flow) and reports sw_state
//     DOWNLOADING → DOWNLOADED → VERIFIED → UPDATING → UPDATED, or FAILED
//     with sw_error. A flow whose nodes fail to start is rolled back.
//   - Packages never carry secrets and never cut the box off: one without
//     the management connection, or changing its server or credentials, is
//     refused.
//   - Health telemetry goes to the managing device every statsInterval, and
//     the device answers the tbflow.* service RPCs (ping, stats, restart,
//     logLevel, logs, flow, validate).
//   - Connections with a provision key provision their device on first
//     start and keep the credentials in the credentials file.
//
// The package uses tb/ and engine/ only; cmd/tbflow wires it to the node
// types, whose tb-connection satisfies [Conn].
package fleet
