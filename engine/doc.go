// Package engine runs tbflow flows: Node-RED-shaped flow documents, the
// node-type registry with its config specs, validation, and the runtime that
// moves messages between nodes.
//
// # Flow documents
//
// A flow is Node-RED's flat JSON array of objects. Tabs are {"type":"tab"},
// config nodes (shared connections) have no "z", "x", "y" or "wires", and
// every other object is a node whose settings are top-level fields. [Flow]
// holds a parsed document and its revision; [FileStore] loads and saves it
// atomically, keeping secrets in a credentials file beside the flow.
//
// # Node types
//
// A node package declares each type once, in its init function, with
// [Register] (or [Registry.Register] on a registry value). The declaration,
// a [Type], carries everything the rest of the program derives: the editor's
// palette entry and property form ([Type.MarshalJSON]), server-side
// validation ([Registry.Validate]), the Markdown reference ([Registry.Markdown])
// and a JSON Schema for flow files ([Registry.JSONSchema]). The runtime
// decodes a node's validated settings into the type's config struct and
// calls its constructor; the [Node] interface documents the lifecycle.
//
// # Runtime
//
// [Engine] runs a deployed flow: one goroutine per node with a bounded
// inbox, so a slow node slows its sources instead of growing memory. It
// deploys hot ([DeployModified]) or fully ([DeployFull]), routes errors to
// catch nodes and to the event stream, publishes status and debug events
// ([Engine.Subscribe]) and exposes per-node counters as Prometheus metrics
// (the Engine is a prometheus.Collector).
package engine
