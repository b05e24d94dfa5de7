package function

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/dop251/goja"

	"github.com/tbflow/tbflow/engine"
)

// Limits on values copied out of a script (messages, context values).
const (
	maxDepth  = 64
	maxValues = 100_000
	// maxTimers bounds the timers one node may have pending.
	maxTimers = 10_000
)

// jsRuntime is the goja runtime of one function node. Every method runs
// with the node's mutex held.
type jsRuntime struct {
	n    *fnNode
	vm   *goja.Runtime
	fn   goja.Value    // the compiled message function
	call goja.Callable // fn, callable from Go
	run  goja.Callable // run(fn, msg, ok, fail): fn(msg).then(ok, fail)
	nop  goja.Value

	// the message being handled, for node.send's _msgid and its context
	curID  string
	curCtx context.Context

	budgetMu    sync.Mutex
	deadline    time.Time
	budgetOn    bool
	budgetTimer *time.Timer

	timers    map[int64]*time.Timer
	nextTimer int64
}

var errBudget = errors.New("budget")

func newJSRuntime(n *fnNode) (*jsRuntime, error) {
	vm := goja.New()
	vm.SetMaxCallStackSize(10_000)
	js := &jsRuntime{n: n, vm: vm, timers: map[int64]*time.Timer{}}
	js.nop = vm.ToValue(func(goja.FunctionCall) goja.Value { return goja.Undefined() })
	js.installAPI()
	helper, err := vm.RunString(`(function(fn, msg, send, done, ok, fail) { return fn(msg, send, done).then(ok, fail); })`)
	if err != nil {
		return nil, err
	}
	js.run, _ = goja.AssertFunction(helper)
	v, err := vm.RunProgram(n.prog)
	if err != nil {
		return nil, err
	}
	if _, ok := goja.AssertFunction(v); !ok {
		return nil, errors.New("the function did not compile to a function")
	}
	js.fn = v
	js.call, _ = goja.AssertFunction(v)
	return js, nil
}

// asyncRun is one message's run of an async script: its promise settles
// during the call (the outcome is returned from Handle) or later, after an
// await (the outcome is sent, or reported with the message, then).
type asyncRun struct {
	js      *jsRuntime
	msg     *engine.Msg
	late    bool // the call has returned
	settled bool
	result  goja.Value
	failure error
}

func (r *asyncRun) settle(v goja.Value, err error) {
	if !r.late {
		r.settled, r.result, r.failure = true, v, err
		return
	}
	if err == nil {
		err = r.js.sendResults(r.js.n.life, v, r.msg.ID)
	}
	if err != nil {
		r.js.n.nc.Error(err, r.msg)
	}
}

// overBudget interrupts the run in progress when it is past its deadline.
// A timer that fires as a run ends finds budgetOn false, or a later run's
// deadline still ahead.
func (js *jsRuntime) overBudget() {
	js.budgetMu.Lock()
	if js.budgetOn && !time.Now().Before(js.deadline) {
		js.vm.Interrupt(errBudget)
	}
	js.budgetMu.Unlock()
}

// timed runs f under the node's time budget.
func (js *jsRuntime) timed(f func() error) error {
	js.budgetMu.Lock()
	js.deadline = time.Now().Add(js.n.budget)
	js.budgetOn = true
	js.budgetMu.Unlock()
	if js.budgetTimer == nil {
		js.budgetTimer = time.AfterFunc(js.n.budget, js.overBudget)
	} else {
		js.budgetTimer.Reset(js.n.budget)
	}
	err := f()
	js.budgetTimer.Stop()
	js.budgetMu.Lock()
	js.budgetOn = false
	js.budgetMu.Unlock()
	js.vm.ClearInterrupt()
	var ie *goja.InterruptedError
	if errors.As(err, &ie) {
		return fmt.Errorf("the script ran longer than its budget of %s and was interrupted", js.n.budget)
	}
	if err != nil {
		return jsException(err)
	}
	return nil
}

func jsException(err error) error {
	var ex *goja.Exception
	if errors.As(err, &ex) {
		return errors.New(ex.Value().String())
	}
	return err
}

func jsError(v goja.Value) error {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return errors.New("promise rejected")
	}
	return errors.New(v.String())
}

// handle runs the message function for m and sends what it returns.
func (js *jsRuntime) handle(ctx context.Context, m *engine.Msg) error {
	jm := js.msgToJS(m)
	js.curID, js.curCtx = m.ID, ctx
	defer func() { js.curID, js.curCtx = "", nil }()
	if !js.n.async {
		var res goja.Value
		err := js.timed(func() error {
			var err error
			res, err = js.call(goja.Undefined(), jm, js.nop, js.nop)
			return err
		})
		if err != nil {
			return err
		}
		return js.sendResults(ctx, res, m.ID)
	}
	run := &asyncRun{js: js, msg: m}
	ok := js.vm.ToValue(func(c goja.FunctionCall) goja.Value { run.settle(c.Argument(0), nil); return goja.Undefined() })
	fail := js.vm.ToValue(func(c goja.FunctionCall) goja.Value { run.settle(nil, jsError(c.Argument(0))); return goja.Undefined() })
	err := js.timed(func() error {
		_, err := js.run(goja.Undefined(), js.fn, jm, js.nop, js.nop, ok, fail)
		return err
	})
	run.late = true
	if err != nil {
		run.settled = true
		return err
	}
	if !run.settled {
		return nil // awaiting a timer or another promise: the outcome comes later
	}
	if run.failure != nil {
		return run.failure
	}
	return js.sendResults(ctx, run.result, m.ID)
}

// runStart runs On Start code. When it returns a pending promise, the
// returned channel closes once the promise settles (a rejection is
// reported); otherwise it is nil.
func (js *jsRuntime) runStart(p *goja.Program) (chan struct{}, error) {
	var ready chan struct{}
	err := js.timed(func() error {
		v, err := js.vm.RunProgram(p)
		if err != nil {
			return err
		}
		f, ok := goja.AssertFunction(v)
		if !ok {
			return nil
		}
		pv, err := f(goja.Undefined())
		if err != nil {
			return err
		}
		po, ok := pv.(*goja.Object)
		if !ok {
			return nil
		}
		pr, ok := po.Export().(*goja.Promise)
		if !ok {
			return nil
		}
		switch pr.State() {
		case goja.PromiseStateRejected:
			return jsError(pr.Result())
		case goja.PromiseStateFulfilled:
			// An async On Start whose own result is a promise (return
			// new Promise(...)) resolves through it: wait on that.
			if inner, ok := pr.Result().Export().(*goja.Promise); !ok || inner.State() != goja.PromiseStatePending {
				return nil
			}
		}
		ready = make(chan struct{})
		once := sync.OnceFunc(func() { close(ready) })
		then, _ := goja.AssertFunction(po.Get("then"))
		_, err = then(po, js.vm.ToValue(func(goja.FunctionCall) goja.Value { once(); return goja.Undefined() }),
			js.vm.ToValue(func(c goja.FunctionCall) goja.Value {
				js.n.nc.Error(fmt.Errorf("On Start: %w", jsError(c.Argument(0))), nil)
				once()
				return goja.Undefined()
			}))
		return err
	})
	return ready, err
}

// runScript runs On Start or On Stop code.
func (js *jsRuntime) runScript(p *goja.Program, _ *engine.Msg) error {
	return js.timed(func() error {
		v, err := js.vm.RunProgram(p)
		if err != nil {
			return err
		}
		f, ok := goja.AssertFunction(v)
		if !ok {
			return nil
		}
		pv, err := f(goja.Undefined())
		if err != nil {
			return err
		}
		if p, ok := pv.Export().(*goja.Promise); ok && p.State() == goja.PromiseStateRejected {
			return jsError(p.Result())
		}
		return nil
	})
}

// sendResults sends what the script returned or passed to node.send:
// a message, an array with one entry per output (an entry may be an array
// of messages), or null.
func (js *jsRuntime) sendResults(ctx context.Context, v goja.Value, id string) error {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return nil
	}
	obj, ok := v.(*goja.Object)
	if !ok {
		return fmt.Errorf("the function tried to send a message of type %s", v.ExportType())
	}
	if obj.ClassName() != "Array" {
		return js.sendOne(ctx, 0, obj, id)
	}
	outs := js.n.nc.Outputs()
	n := int(obj.Get("length").ToInteger())
	for port := 0; port < n && port < outs; port++ {
		item := obj.Get(strconv.Itoa(port))
		if item == nil || goja.IsNull(item) || goja.IsUndefined(item) {
			continue
		}
		io, ok := item.(*goja.Object)
		if !ok {
			return fmt.Errorf("output %d: the function tried to send a message of type %s", port+1, item.ExportType())
		}
		if io.ClassName() != "Array" {
			if err := js.sendOne(ctx, port, io, id); err != nil {
				return err
			}
			continue
		}
		k := int(io.Get("length").ToInteger())
		for i := range k {
			el := io.Get(strconv.Itoa(i))
			if el == nil || goja.IsNull(el) || goja.IsUndefined(el) {
				continue
			}
			eo, ok := el.(*goja.Object)
			if !ok {
				return fmt.Errorf("output %d: the function tried to send a message of type %s", port+1, el.ExportType())
			}
			if err := js.sendOne(ctx, port, eo, id); err != nil {
				return err
			}
		}
	}
	return nil
}

func (js *jsRuntime) sendOne(ctx context.Context, port int, o *goja.Object, id string) error {
	v, err := fromJS(o)
	if err != nil {
		return err
	}
	mm, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("the function tried to send a message of type %s", o.ClassName())
	}
	msg := engine.MsgFromMap(mm)
	if id != "" {
		msg.ID = id
	}
	if ctx == nil {
		ctx = js.n.life
	}
	return js.n.nc.SendTo(ctx, port, msg)
}

// msgToJS builds the script's msg object.
func (js *jsRuntime) msgToJS(m *engine.Msg) goja.Value {
	o := js.vm.NewObject()
	o.Set("_msgid", m.ID)
	if m.Topic != "" {
		o.Set("topic", m.Topic)
	}
	o.Set("payload", js.toJS(m.Payload))
	for k, v := range m.Fields {
		o.Set(k, js.toJS(v))
	}
	return o
}

// toJS copies a Go value into native JavaScript values.
func (js *jsRuntime) toJS(v any) goja.Value {
	switch t := v.(type) {
	case nil:
		return goja.Null()
	case string:
		return js.vm.ToValue(t)
	case float64, bool, int, int64:
		return js.vm.ToValue(t)
	case map[string]any:
		o := js.vm.NewObject()
		for k, x := range t {
			o.Set(k, js.toJS(x))
		}
		return o
	case []any:
		els := make([]any, len(t))
		for i, x := range t {
			els[i] = js.toJS(x)
		}
		return js.vm.NewArray(els...)
	case []byte:
		els := make([]any, len(t))
		for i, x := range t {
			els[i] = int64(x)
		}
		return js.vm.NewArray(els...)
	case json.RawMessage:
		var x any
		if json.Unmarshal(t, &x) == nil {
			return js.toJS(x)
		}
		return goja.Null()
	case time.Time:
		d, err := js.vm.New(js.vm.Get("Date"), js.vm.ToValue(t.UnixMilli()))
		if err != nil {
			return goja.Null()
		}
		return d
	}
	// Other Go values (a slice of numbers, a struct) go through JSON.
	b, err := json.Marshal(v)
	if err != nil {
		return js.vm.ToValue(fmt.Sprint(v))
	}
	var x any
	_ = json.Unmarshal(b, &x)
	return js.toJS(x)
}

// fromJS copies a script value out into JSON-like Go values, within the
// depth and size limits. Functions and undefined properties are left out,
// as JSON.stringify does; a Date becomes its ISO string.
func fromJS(v goja.Value) (any, error) {
	count := 0
	return fromJSAt(v, 0, &count)
}

func fromJSAt(v goja.Value, depth int, count *int) (any, error) {
	*count++
	if *count > maxValues {
		return nil, fmt.Errorf("value has more than %d elements", maxValues)
	}
	if depth > maxDepth {
		return nil, fmt.Errorf("value is nested deeper than %d levels (a cycle?)", maxDepth)
	}
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return nil, nil
	}
	o, ok := v.(*goja.Object)
	if !ok {
		x := v.Export()
		if f, ok := x.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return nil, nil // as JSON.stringify
		}
		return x, nil
	}
	switch o.ClassName() {
	case "Array":
		n := int(o.Get("length").ToInteger())
		if n > maxValues {
			return nil, fmt.Errorf("array has more than %d elements", maxValues)
		}
		out := make([]any, n)
		for i := range n {
			x, err := fromJSAt(o.Get(strconv.Itoa(i)), depth+1, count)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case "Function":
		return nil, nil
	case "Date":
		if f, ok := goja.AssertFunction(o.Get("toISOString")); ok {
			if s, err := f(o); err == nil {
				return s.String(), nil
			}
		}
		return nil, nil
	case "Number", "String", "Boolean":
		return o.Export(), nil
	}
	keys := o.Keys()
	out := make(map[string]any, len(keys))
	for _, k := range keys {
		pv := o.Get(k)
		if pv == nil || goja.IsUndefined(pv) {
			continue
		}
		if po, ok := pv.(*goja.Object); ok && po.ClassName() == "Function" {
			continue
		}
		x, err := fromJSAt(pv, depth+1, count)
		if err != nil {
			return nil, err
		}
		out[k] = x
	}
	return out, nil
}
