package function

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dop251/goja"

	"github.com/tbflow/tbflow/engine"
)

// installAPI defines Node-RED's function globals: node, context, flow,
// global, env, the timer functions, RED.util, console, and a require that
// says it is not supported.
func (js *jsRuntime) installAPI() {
	vm, n := js.vm, js.n
	ref := n.nc.Ref()
	fn := func(f func(goja.FunctionCall) goja.Value) goja.Value { return vm.ToValue(f) }

	node := vm.NewObject()
	node.Set("id", ref.ID)
	node.Set("name", ref.Name)
	node.Set("outputCount", n.nc.Outputs())
	node.Set("send", fn(func(c goja.FunctionCall) goja.Value {
		ctx := js.curCtx
		if ctx == nil {
			ctx = n.life
		}
		if err := js.sendResults(ctx, c.Argument(0), js.curID); err != nil {
			panic(vm.NewGoError(err))
		}
		return goja.Undefined()
	}))
	node.Set("done", js.nop)
	logf := func(level string) goja.Value {
		return fn(func(c goja.FunctionCall) goja.Value {
			text := c.Argument(0).String()
			if o, ok := c.Argument(0).(*goja.Object); ok && o.ClassName() == "Object" {
				if v, err := fromJS(o); err == nil {
					text = jsonText(v)
				}
			}
			switch level {
			case "warn":
				n.nc.Logger().Warn(text)
				if n.nc.DebugWanted() {
					n.nc.Debug("warn", text) // Node-RED shows warnings in the debug sidebar
				}
			case "error":
				if m, ok := c.Argument(1).(*goja.Object); ok {
					if v, err := fromJS(m); err == nil {
						if mm, ok := v.(map[string]any); ok {
							n.nc.Error(errors.New(text), engine.MsgFromMap(mm))
							return goja.Undefined()
						}
					}
				}
				n.nc.Logger().Error(text)
				if n.nc.DebugWanted() {
					n.nc.Debug("error", text)
				}
			default:
				n.nc.Logger().Info(text)
			}
			return goja.Undefined()
		})
	}
	node.Set("log", logf("log"))
	node.Set("warn", logf("warn"))
	node.Set("error", logf("error"))
	node.Set("debug", logf("log"))
	node.Set("trace", logf("log"))
	node.Set("status", fn(func(c goja.FunctionCall) goja.Value {
		var s engine.Status
		switch a := c.Argument(0).(type) {
		case *goja.Object:
			s.Fill = str(a.Get("fill"))
			s.Shape = str(a.Get("shape"))
			s.Text = str(a.Get("text"))
		default:
			if !goja.IsUndefined(a) && !goja.IsNull(a) {
				s.Text = a.String()
			}
		}
		n.nc.Status(s)
		return goja.Undefined()
	}))
	node.Set("linkcall", fn(func(goja.FunctionCall) goja.Value {
		panic(vm.NewTypeError("node.linkcall is not supported in tbflow; use a link call node"))
	}))
	vm.Set("node", node)

	vm.Set("context", js.store(n.nc.Context(engine.ContextNode)))
	vm.Set("flow", js.store(n.nc.Context(engine.ContextFlow)))
	vm.Set("global", js.store(n.nc.Context(engine.ContextGlobal)))

	env := vm.NewObject()
	env.Set("get", fn(func(c goja.FunctionCall) goja.Value {
		name := c.Argument(0).String()
		switch name {
		case "NR_NODE_ID":
			return vm.ToValue(ref.ID)
		case "NR_NODE_NAME":
			return vm.ToValue(ref.Name)
		case "NR_FLOW_ID":
			return vm.ToValue(ref.Tab)
		}
		if v, ok := n.nc.LookupEnv(name); ok {
			return vm.ToValue(v)
		}
		return goja.Undefined()
	}))
	vm.Set("env", env)

	vm.Set("setTimeout", fn(func(c goja.FunctionCall) goja.Value { return js.timer(c, false) }))
	vm.Set("setInterval", fn(func(c goja.FunctionCall) goja.Value { return js.timer(c, true) }))
	clear := fn(func(c goja.FunctionCall) goja.Value {
		id := c.Argument(0).ToInteger()
		if t := js.timers[id]; t != nil {
			t.Stop()
			delete(js.timers, id)
		}
		return goja.Undefined()
	})
	vm.Set("clearTimeout", clear)
	vm.Set("clearInterval", clear)

	util := vm.NewObject()
	util.Set("cloneMessage", fn(func(c goja.FunctionCall) goja.Value {
		v, err := fromJS(c.Argument(0))
		if err != nil {
			panic(vm.NewGoError(err))
		}
		return js.toJS(v)
	}))
	red := vm.NewObject()
	red.Set("util", util)
	vm.Set("RED", red)

	console := vm.NewObject()
	console.Set("log", logf("log"))
	console.Set("info", logf("log"))
	console.Set("warn", logf("warn"))
	console.Set("error", logf("warn"))
	vm.Set("console", console)

	vm.Set("require", fn(func(goja.FunctionCall) goja.Value {
		panic(vm.NewTypeError("require() is not supported in tbflow (no external modules)"))
	}))
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func str(v goja.Value) string {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return ""
	}
	return v.String()
}

// store exposes a context store as Node-RED's get / set / keys, with the
// optional store name and callback arguments.
func (js *jsRuntime) store(s *engine.ContextStore) *goja.Object {
	vm := js.vm
	o := vm.NewObject()
	callback := func(c goja.FunctionCall) (goja.Callable, bool) {
		if len(c.Arguments) == 0 {
			return nil, false
		}
		return goja.AssertFunction(c.Arguments[len(c.Arguments)-1])
	}
	get := func(key goja.Value) goja.Value {
		if ko, ok := key.(*goja.Object); ok && ko.ClassName() == "Array" {
			keys, _ := fromJS(ko)
			ks, _ := keys.([]any)
			out := make([]any, len(ks))
			for i, k := range ks {
				v, _ := ctxGet(s, fmt.Sprint(k))
				out[i] = js.toJS(engine.CloneValue(v))
			}
			return vm.NewArray(out...)
		}
		v, ok := ctxGet(s, key.String())
		if !ok {
			return goja.Undefined()
		}
		return js.toJS(engine.CloneValue(v))
	}
	o.Set("get", func(c goja.FunctionCall) goja.Value {
		v := get(c.Argument(0))
		if cb, ok := callback(c); ok && len(c.Arguments) > 1 {
			if _, err := cb(goja.Undefined(), goja.Null(), v); err != nil {
				panic(err)
			}
			return goja.Undefined()
		}
		return v
	})
	o.Set("set", func(c goja.FunctionCall) goja.Value {
		val, err := fromJS(c.Argument(1))
		if err != nil {
			panic(vm.NewGoError(fmt.Errorf("context value: %w", err)))
		}
		if err := ctxSet(s, c.Argument(0).String(), val); err != nil {
			panic(vm.NewGoError(err))
		}
		if cb, ok := callback(c); ok && len(c.Arguments) > 2 {
			if _, err := cb(goja.Undefined(), goja.Null()); err != nil {
				panic(err)
			}
		}
		return goja.Undefined()
	})
	o.Set("keys", func(c goja.FunctionCall) goja.Value {
		ks := s.Keys()
		out := make([]any, len(ks))
		for i, k := range ks {
			out[i] = k
		}
		arr := vm.NewArray(out...)
		if cb, ok := callback(c); ok {
			if _, err := cb(goja.Undefined(), goja.Null(), arr); err != nil {
				panic(err)
			}
			return goja.Undefined()
		}
		return arr
	})
	return o
}

// timer implements setTimeout and setInterval. Callbacks run under the
// node's lock and budget; they stop when the node stops.
func (js *jsRuntime) timer(c goja.FunctionCall, repeat bool) goja.Value {
	cb, ok := goja.AssertFunction(c.Argument(0))
	if !ok {
		panic(js.vm.NewTypeError("callback must be a function"))
	}
	if len(js.timers) >= maxTimers {
		panic(js.vm.NewGoError(fmt.Errorf("more than %d timers pending", maxTimers)))
	}
	ms := c.Argument(1).ToFloat()
	if ms < 0 || ms != ms {
		ms = 0
	}
	d := time.Duration(ms * float64(time.Millisecond))
	if repeat && d < time.Millisecond {
		d = time.Millisecond
	}
	var args []goja.Value
	if len(c.Arguments) > 2 {
		args = append(args, c.Arguments[2:]...)
	}
	js.nextTimer++
	id := js.nextTimer
	n := js.n
	var fire func()
	fire = func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.stopped || js.timers[id] == nil {
			return
		}
		if repeat {
			js.timers[id] = time.AfterFunc(d, fire)
		} else {
			delete(js.timers, id)
		}
		js.curCtx = n.life
		err := js.timed(func() error {
			_, err := cb(goja.Undefined(), args...)
			return err
		})
		js.curCtx = nil
		if err != nil {
			n.nc.Error(err, nil)
		}
	}
	js.timers[id] = time.AfterFunc(d, fire)
	return js.vm.ToValue(id)
}

func (js *jsRuntime) clearTimers() {
	for id, t := range js.timers {
		t.Stop()
		delete(js.timers, id)
	}
}
