// Package thingsboard provides the ThingsBoard flow nodes: the tb-connection
// config node (one tb.Device or tb.Gateway shared by every node using it),
// tb-telemetry-out, tb-attr-out, tb-attr-in, tb-rpc-in, tb-rpc-out,
// tb-rpc-call and gw-device. docs/thingsboard-nodes.md is the user guide.
package thingsboard
