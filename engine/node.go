package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
)

// Node is a running instance of a node type. Its lifecycle, which the engine
// drives and every implementation must honour, is:
//
//  1. Construction. The type's [Constructor] receives the node's config,
//     already validated against the spec, defaulted, with ${ENV} references
//     and secrets resolved, and decoded strictly into the type's config
//     struct. The constructor checks and prepares; it must not do I/O, start
//     goroutines or acquire anything that needs releasing: validation and
//     the conformance suite construct nodes that are never started.
//  2. Start(ctx). Acquire resources: connect, subscribe, open files. ctx
//     covers only the start attempt and must not be kept. A returned error
//     is reported as the node's status and the engine calls Start again
//     after a backoff until it succeeds or the node is stopped; the node does
//     not loop on its own. Start must undo its own partial work when it
//     fails, or leave it for Stop.
//  3. Running. Optional abilities are one-method interfaces: [Handler]
//     receives input messages one at a time, on the node's goroutine;
//     [Runner] produces messages on its own (sources, timers); [Injector]
//     answers the editor's inject button. Handle and Run may run
//     concurrently with each other.
//  4. Stop(ctx). Release everything Start acquired. The engine calls Stop
//     once Handle and Run have returned, under the engine's stop deadline
//     (ctx carries it). Stop must be idempotent, must be safe after a failed
//     or missing Start (undo a partial Start), and must return promptly when
//     ctx is done.
//
// Nodes report errors (by returning them, or with [NodeContext.Error]) and
// status ([NodeContext.Status]); the engine owns retry and backoff policy.
type Node interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Handler is implemented by nodes with an input. Handle processes one
// message; the node owns msg and may send it on with [NodeContext.Send].
// A returned error is routed to catch nodes on the node's tab and to the
// "error" event stream, with msg attached. Returning an error that wraps
// [ErrNotConnected] makes the engine retry the same message after a backoff
// instead (nothing is dropped while a connection is down). Handle must
// return promptly when ctx is done.
type Handler interface {
	Handle(ctx context.Context, msg *Msg) error
}

// Runner is implemented by nodes that produce messages on their own (an
// inject timer, a subscription pump). The engine calls Run on its own
// goroutine after Start succeeds; Run returns when ctx is done. A non-nil
// error other than ctx's is reported and Run is called again after a
// backoff.
type Runner interface {
	Run(ctx context.Context) error
}

// Injector is implemented by nodes with an inject button (the editor's
// button, [Engine.Inject]). Inject sends the node's message now.
type Injector interface {
	Inject(ctx context.Context) error
}

// ErrorCatcher is implemented by catch nodes. For every error reported by a
// node on the same tab, the engine asks Catches(source); when it returns
// true the engine puts a message on the catcher's input: the failed message
// (or an empty one) with an "error" field {"message", "source":{"id",
// "type","name"}}. Catch nodes declare no inputs (no wire reaches them) yet
// implement [Handler] to receive these messages; delivery never blocks the failing node: when the
// catcher's inbox is full the error only reaches the event stream.
type ErrorCatcher interface {
	Catches(source NodeRef) bool
}

// StatusWatcher is implemented by status nodes, like [ErrorCatcher] but for
// status changes: the message carries a "status" field {"fill","shape",
// "text","source"}.
type StatusWatcher interface {
	WatchesStatus(source NodeRef) bool
}

// ErrNotConnected tells the engine that a node cannot do its work because a
// connection is down; see [Handler].
var ErrNotConnected = errors.New("not connected")

// Validator is implemented by config structs with checks beyond what the
// spec expresses (a cron expression, a JSON literal). Validation and
// construction call it on the decoded config; return a [*FieldError] (or
// several joined with errors.Join) to point at a field.
type Validator interface {
	Validate() error
}

// FieldError is a problem with one config field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Constructor builds a node from its decoded config. Create one with
// [Construct].
type Constructor interface {
	// ConfigType is the config struct type the node's settings decode into.
	ConfigType() reflect.Type
	// New constructs a node; conf is a pointer to a ConfigType value.
	New(nc *NodeContext, conf any) (Node, error)
}

// Construct turns a typed constructor into a [Constructor]. C is the config
// struct; its exported fields' json tags must match the type's field specs
// one to one (the registry checks this when the type is registered).
//
//	engine.Register(engine.Type{
//		Name: "tb-telemetry-out", Inputs: 1, ...,
//		Fields: []engine.Field{{Name: "connection", Kind: engine.KindConfigRef, Ref: "tb-connection", Required: true}},
//		New: engine.Construct(func(nc *engine.NodeContext, c *telemetryConfig) (engine.Node, error) {
//			conn, err := engine.ConfigNodeAs[*tbConnection](nc, c.Connection)
//			...
//		}),
//	})
func Construct[C any](fn func(nc *NodeContext, conf *C) (Node, error)) Constructor {
	if fn == nil {
		return nil
	}
	return ctorFunc[C](fn)
}

type ctorFunc[C any] func(nc *NodeContext, conf *C) (Node, error)

func (f ctorFunc[C]) ConfigType() reflect.Type { return reflect.TypeFor[C]() }

func (f ctorFunc[C]) New(nc *NodeContext, conf any) (Node, error) {
	c, ok := conf.(*C)
	if !ok {
		return nil, fmt.Errorf("config is %T, want %T", conf, (*C)(nil))
	}
	return f(nc, c)
}

// NodeRef identifies a node in events and error messages.
type NodeRef struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Name string `json:"name,omitempty"`
	Tab  string `json:"z,omitempty"`
}

// Status is what a node shows under itself in the editor.
type Status struct {
	// Fill is "red", "green", "yellow", "blue" or "grey"; empty clears.
	Fill string `json:"fill,omitempty"`
	// Shape is "dot" or "ring".
	Shape string `json:"shape,omitempty"`
	// Text is a short text such as "connected" or "error: timeout".
	Text string `json:"text,omitempty"`
}

// Common statuses.
var (
	StatusConnecting = Status{Fill: "yellow", Shape: "ring", Text: "connecting"}
	StatusConnected  = Status{Fill: "green", Shape: "dot", Text: "connected"}
)

// StatusError returns a red status for err.
func StatusError(err error) Status {
	return Status{Fill: "red", Shape: "dot", Text: "error: " + err.Error()}
}
