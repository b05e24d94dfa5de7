package function

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/dop251/goja"

	"github.com/tbflow/tbflow/engine"
)

// DefaultBudget is the time one run of a script may take (a message, a
// timer callback, On Start or On Stop) when the node's timeout is 0.
const DefaultBudget = time.Second

func init() {
	engine.Register(engine.Type{
		Name: "function", Category: engine.CategoryFunction, Inputs: 1, OutputsField: "outputs",
		Label: "function", Color: "#fdd0a2", Icon: "function",
		Summary:      "Runs JavaScript for every message, with Node-RED's function API.",
		OutputLabels: []string{"output 1", "output 2", "output 3", "output 4", "output 5"},
		Help: `Runs the JavaScript in **func** for every message, as Node-RED's function node does: the
message is ` + "`msg`" + `; ` + "`return msg`" + ` sends it, ` + "`return [a, b]`" + ` sends one message per output,
` + "`return [[a1, a2], b]`" + ` several on one output, ` + "`return null`" + ` nothing.

Available: ` + "`node.send(msg)`" + `, ` + "`node.done()`" + `, ` + "`node.warn`" + ` / ` + "`node.error(err, msg)`" + ` / ` + "`node.log`" + `,
` + "`node.status({fill, shape, text})`" + `, ` + "`node.id`" + `, ` + "`node.name`" + `; ` + "`context`" + `, ` + "`flow`" + ` and
` + "`global`" + ` with ` + "`get(key)`" + `, ` + "`set(key, value)`" + ` and ` + "`keys()`" + ` (keys may be paths such as
` + "`device.readings[0]`" + `; memory store: values stay across
deploys while tbflow runs; they are copies, so ` + "`set`" + ` again after changing an object you got);
` + "`env.get(\"NAME\")`" + `; ` + "`setTimeout`" + ` / ` + "`clearTimeout`" + ` / ` + "`setInterval`" + ` / ` + "`clearInterval`" + `;
` + "`RED.util.cloneMessage`" + `; ` + "`await`" + ` on promises.

**On Start** (` + "`initialize`" + `) runs once when the node starts, **On Stop** (` + "`finalize`" + `) when it stops.
Every run of a script has a time budget (**timeout**): a script that runs longer is interrupted and
the error goes to ` + "`catch`" + ` nodes. External modules (` + "`require`" + `, the **libs** setting) and Node.js
APIs (` + "`Buffer`" + `, ` + "`process`" + `) are not available.

Bounds: time per run (the budget); messages a script sends or returns are copied out of the script
with at most 64 levels of nesting and 100 000 values, and context values the same. goja has no heap
limit, so a script that allocates a lot within its budget is not stopped by size.`,
		Fields: []engine.Field{
			{Name: "func", Kind: engine.KindString, Label: "Function", Default: "return msg;",
				Help: "JavaScript run for every message; `msg` is the message.", Example: "msg.payload = msg.payload * 2;\nreturn msg;"},
			{Name: "outputs", Kind: engine.KindInt, Label: "Outputs", Default: 1, Min: engine.Float(0), Max: engine.Float(64),
				Help: "Number of outputs; return an array with one entry per output."},
			{Name: "initialize", Kind: engine.KindString, Label: "On Start", Default: "",
				Help: "JavaScript run once when the node starts (before the first message)."},
			{Name: "finalize", Kind: engine.KindString, Label: "On Stop", Default: "",
				Help: "JavaScript run when the node stops or is redeployed."},
			{Name: "timeout", Kind: engine.KindNumber, Label: "Timeout (s)", Default: 0.0, Min: engine.Float(0), Max: engine.Float(3600),
				Help: "Time budget of one run in seconds; 0 means the default of 1 second. A script over budget is interrupted."},
			{Name: "libs", Kind: engine.KindJSON, Label: "Modules", Advanced: true,
				Help: "Node-RED's external modules; not supported in tbflow, kept so an imported flow names them."},
			{Name: "noerr", Kind: engine.KindInt, Label: "Editor error count", Advanced: true, Default: 0,
				Help: "Kept from Node-RED's editor (the number of syntax errors it saw); not used."},
		},
		New: engine.Construct(newFunction),
	})
}

type config struct {
	Func       string  `json:"func"`
	Outputs    int     `json:"outputs"`
	Initialize string  `json:"initialize"`
	Finalize   string  `json:"finalize"`
	Timeout    float64 `json:"timeout"`
	Libs       any     `json:"libs"`
	Noerr      int     `json:"noerr"`
}

// wrapper lines: the user's code starts on line 2 of the compiled source.
const (
	msgPrefix   = "(async function(msg, __send__, __done__) {\n"
	syncPrefix  = "(function(msg, __send__, __done__) {\n"
	startPrefix = "(async function() {\n"
	suffix      = "\n})"
)

var (
	requireRE  = regexp.MustCompile(`\brequire\s*\(`)
	awaitRE    = regexp.MustCompile(`\bawait\b`)
	linkcallRE = regexp.MustCompile(`\bnode\.linkcall\b`)
)

// msgWrapper is the wrapper of a message script: an async function only
// when the code awaits, since a plain call costs a fraction of one.
func msgWrapper(src string) string {
	if awaitRE.MatchString(src) {
		return msgPrefix
	}
	return syncPrefix
}

// Validate reports syntax errors with line and column, and what is not
// supported (modules).
func (c *config) Validate() error {
	var errs []error
	if libs, ok := c.Libs.([]any); ok && len(libs) > 0 {
		var names []string
		for _, l := range libs {
			if m, ok := l.(map[string]any); ok {
				names = append(names, fmt.Sprint(m["module"]))
			}
		}
		errs = append(errs, &engine.FieldError{Field: "libs", Message: "external modules are not supported in tbflow (" + strings.Join(names, ", ") + "); remove them and the code using them"})
	}
	for _, s := range []struct{ field, src, prefix string }{
		{"func", c.Func, msgWrapper(c.Func)}, {"initialize", c.Initialize, startPrefix}, {"finalize", c.Finalize, startPrefix},
	} {
		if _, err := compile(s.field, s.src, s.prefix); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// compile compiles one script wrapped in its function; a problem comes
// back as a FieldError with the line and column in the user's code.
func compile(field, src, prefix string) (*goja.Program, error) {
	if loc := requireRE.FindStringIndex(src); loc != nil {
		l, c := lineCol(src, loc[0])
		return nil, &engine.FieldError{Field: field, Message: fmt.Sprintf("line %d, column %d: require() is not supported in tbflow (no external modules)", l, c)}
	}
	if loc := linkcallRE.FindStringIndex(src); loc != nil {
		l, c := lineCol(src, loc[0])
		return nil, &engine.FieldError{Field: field, Message: fmt.Sprintf("line %d, column %d: node.linkcall is not supported in tbflow; use a link call node", l, c)}
	}
	p, err := goja.Compile(field, prefix+src+suffix, false)
	if err == nil {
		return p, nil
	}
	var se *goja.CompilerSyntaxError
	if errors.As(err, &se) && se.File != nil {
		pos := se.File.Position(se.Offset)
		return nil, &engine.FieldError{Field: field, Message: fmt.Sprintf("line %d, column %d: %s", max(pos.Line-1, 1), pos.Column, se.Message)}
	}
	return nil, &engine.FieldError{Field: field, Message: err.Error()}
}

func lineCol(s string, off int) (int, int) {
	line, col := 1, 1
	for _, r := range s[:off] {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// fnNode is a running function node. One goja runtime serves every
// message and timer of the node; mu serialises them.
type fnNode struct {
	nc                        *engine.NodeContext
	budget                    time.Duration
	async                     bool
	prog, startProg, stopProg *goja.Program

	mu      sync.Mutex
	js      *jsRuntime    // nil until Start
	ready   chan struct{} // closed when On Start's promise settles; nil if none
	life    context.Context
	cancel  context.CancelFunc
	stopped bool
}

func newFunction(nc *engine.NodeContext, c *config) (engine.Node, error) {
	n := &fnNode{nc: nc, budget: DefaultBudget}
	if c.Timeout > 0 {
		n.budget = time.Duration(c.Timeout * float64(time.Second))
	}
	var err error
	n.async = msgWrapper(c.Func) == msgPrefix
	if n.prog, err = compile("func", c.Func, msgWrapper(c.Func)); err != nil {
		return nil, err
	}
	if strings.TrimSpace(c.Initialize) != "" {
		if n.startProg, err = compile("initialize", c.Initialize, startPrefix); err != nil {
			return nil, err
		}
	}
	if strings.TrimSpace(c.Finalize) != "" {
		if n.stopProg, err = compile("finalize", c.Finalize, startPrefix); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (n *fnNode) Start(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.js != nil {
		return nil
	}
	n.life, n.cancel = context.WithCancel(context.Background())
	js, err := newJSRuntime(n)
	if err != nil {
		n.cancel()
		return err
	}
	n.js = js
	if n.startProg != nil {
		ready, err := js.runStart(n.startProg)
		if err != nil {
			n.nc.Error(fmt.Errorf("On Start: %w", err), nil)
		}
		n.ready = ready
	}
	return nil
}

func (n *fnNode) Stop(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.js == nil || n.stopped {
		return nil
	}
	n.stopped = true
	n.js.clearTimers()
	var err error
	if n.stopProg != nil {
		if e := n.js.runScript(n.stopProg, nil); e != nil {
			err = fmt.Errorf("On Stop: %w", e)
		}
	}
	n.cancel()
	return err
}

// Handle runs the script for m. An error thrown (or a rejected promise)
// before the run ends is returned with m, so catch nodes get it.
func (n *fnNode) Handle(ctx context.Context, m *engine.Msg) error {
	n.mu.Lock()
	ready := n.ready
	n.mu.Unlock()
	if ready != nil {
		// On Start returned a promise: messages wait until it settles.
		select {
		case <-ready:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.js == nil || n.stopped {
		return errors.New("function node is not running")
	}
	return n.js.handle(ctx, m)
}

var _ engine.Handler = (*fnNode)(nil)
