package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/tbflow/tbflow/engine"
)

// maxInFlight bounds the commands of one connection whose replies are not
// written yet; the reader waits for a slot, so a client that does not read
// its replies cannot make the server queue them without bound.
const maxInFlight = 32

// subBuffer is the engine-side buffer of each subscription.
const subBuffer = 256

// TopicDropped is the event a connection gets when events were dropped for
// it because it fell behind.
const TopicDropped = "dropped"

// command is one frame from the browser.
type command struct {
	ID   json.RawMessage `json:"id"`
	Cmd  string          `json:"cmd"`
	Args json.RawMessage `json:"args"`
}

// reply is one answer to a command.
type reply struct {
	ID     json.RawMessage `json:"id"`
	Result any             `json:"result,omitempty"`
	Error  *apiError       `json:"error,omitempty"`
}

var nullID = json.RawMessage("null")

// outItem is a frame waiting for the writer: a marshalled reply or an event.
type outItem struct {
	data  []byte
	ev    engine.Event
	reply bool
}

// outbox is a connection's send queue: replies (bounded by maxInFlight)
// and events (bounded by Options.EventQueue; more are dropped and counted)
// in the order they were produced.
type outbox struct {
	mu        sync.Mutex
	items     []outItem
	events    int
	maxEvents int
	dropped   uint64
	wake      chan struct{}
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) putReply(b []byte) {
	o.mu.Lock()
	o.items = append(o.items, outItem{data: b, reply: true})
	o.mu.Unlock()
	o.signal()
}

func (o *outbox) putEvent(ev engine.Event) {
	o.mu.Lock()
	if o.events >= o.maxEvents {
		o.dropped++
	} else {
		o.items = append(o.items, outItem{ev: ev})
		o.events++
	}
	o.mu.Unlock()
	o.signal()
}

func (o *outbox) addDropped(n uint64) {
	o.mu.Lock()
	o.dropped += n
	o.mu.Unlock()
	o.signal()
}

func (o *outbox) take() ([]outItem, uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	items, dropped := o.items, o.dropped
	o.items, o.dropped, o.events = nil, 0, 0
	return items, dropped
}

// wsSub is one topic pattern a connection subscribed to.
type wsSub struct {
	pattern string
	parts   []string
	sub     *engine.Subscription
}

// wsConn is one editor connection: the HTTP handler's goroutine reads
// commands, a writer goroutine writes replies, events and pings, one
// goroutine per subscription forwards engine events into the outbox, and
// deploy, validate and inject run on goroutines of their own.
type wsConn struct {
	s      *Server
	c      *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	out    *outbox
	slots  chan struct{}
	wg     sync.WaitGroup

	mu   sync.Mutex
	subs []*wsSub // in subscription order

	// session is the login session whose cookie came with the upgrade
	// (zero without one, or with auth off): its logout or expiry ends the
	// connection.
	session [32]byte

	closeOnce sync.Once
}

func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.wsWG.Add(1)
	}
	s.mu.Unlock()
	if closed {
		writeError(w, &apiError{Code: codeInternal, Message: "server is shutting down", status: http.StatusServiceUnavailable})
		return
	}
	defer s.wsWG.Done()
	c, err := s.upg.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has answered the request.
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	wc := &wsConn{
		s: s, c: c, ctx: ctx, cancel: cancel,
		out:   &outbox{maxEvents: s.opts.EventQueue, wake: make(chan struct{}, 1)},
		slots: make(chan struct{}, maxInFlight),
	}
	if key, expires, ok := s.auth.cookieSession(r); ok {
		wc.session = key
		expiry := time.AfterFunc(time.Until(expires), func() {
			wc.closeWith(websocket.ClosePolicyViolation, "session expired")
		})
		defer expiry.Stop()
	}
	s.mu.Lock()
	s.conns[wc] = true
	s.mu.Unlock()
	s.log.Debug("editor connected", "remote", r.RemoteAddr)
	wc.run()
	s.mu.Lock()
	delete(s.conns, wc)
	s.mu.Unlock()
	s.log.Debug("editor disconnected", "remote", r.RemoteAddr)
}

// run serves the connection until it ends, then releases everything.
func (wc *wsConn) run() {
	wc.wg.Add(1)
	go wc.writeLoop()
	wc.readLoop()
	wc.cancel()
	wc.mu.Lock()
	for _, ws := range wc.subs {
		ws.sub.Close()
	}
	wc.subs = nil
	wc.mu.Unlock()
	wc.wg.Wait()
	wc.c.Close()
}

// fail ends a connection whose writes fail: the reader stops on the closed
// connection, or on ctx if it waits for a slot the writer would free.
func (wc *wsConn) fail() {
	wc.cancel()
	wc.c.Close()
}

// shutdown ends the connection from the server side.
func (wc *wsConn) shutdown() {
	wc.closeWith(websocket.CloseGoingAway, "server shutting down")
}

// closeWith ends the connection from the server side with a close frame.
func (wc *wsConn) closeWith(code int, reason string) {
	wc.closeOnce.Do(func() {
		msg := websocket.FormatCloseMessage(code, reason)
		wc.c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		wc.c.Close()
	})
}

// endSession closes the connections a login session opened.
func (s *Server) endSession(key [32]byte) {
	var ended []*wsConn
	s.mu.Lock()
	for wc := range s.conns {
		if wc.session == key {
			ended = append(ended, wc)
		}
	}
	s.mu.Unlock()
	for _, wc := range ended {
		wc.closeWith(websocket.ClosePolicyViolation, "logged out")
	}
}

func (wc *wsConn) readTimeout() time.Duration { return 2 * wc.s.opts.PingInterval }

func (wc *wsConn) readLoop() {
	c := wc.c
	c.SetReadDeadline(time.Now().Add(wc.readTimeout()))
	c.SetPongHandler(func(string) error {
		return c.SetReadDeadline(time.Now().Add(wc.readTimeout()))
	})
	limit := wc.s.opts.MaxFrame
	for {
		typ, r, err := c.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) && !errors.Is(err, net.ErrClosed) {
				wc.s.log.Debug("editor connection read", "err", err)
			}
			return
		}
		c.SetReadDeadline(time.Now().Add(wc.readTimeout()))
		data, err := io.ReadAll(io.LimitReader(r, limit+1))
		if err != nil {
			return
		}
		if typ == websocket.TextMessage && int64(len(data)) <= limit && !utf8.Valid(data) {
			// RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection.
			wc.closeWith(websocket.CloseInvalidFramePayloadData, "text frame is not valid UTF-8")
			return
		}
		if !wc.acquire() {
			return
		}
		if int64(len(data)) > limit {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
			wc.send(nullID, nil, &apiError{Code: codeTooLarge, Message: fmt.Sprintf("frame over the limit of %d bytes: discarded", limit)})
			continue
		}
		wc.dispatch(data)
	}
}

// acquire takes an in-flight slot; the writer gives it back once the reply
// is written.
func (wc *wsConn) acquire() bool {
	select {
	case wc.slots <- struct{}{}:
		return true
	case <-wc.ctx.Done():
		return false
	}
}

// send queues the reply to a command (which holds a slot).
func (wc *wsConn) send(id json.RawMessage, result any, aerr *apiError) {
	if len(id) == 0 {
		id = nullID
	}
	rp := reply{ID: id, Result: result, Error: aerr}
	if aerr == nil && result == nil {
		rp.Result = struct{}{}
	}
	b, err := json.Marshal(rp)
	if err != nil {
		b, _ = json.Marshal(reply{ID: id, Error: &apiError{Code: codeInternal, Message: "encoding the reply: " + err.Error()}})
	}
	wc.out.putReply(b)
}

// dispatch runs one command. Slow commands run on their own goroutine so
// the connection keeps reading and events keep flowing.
func (wc *wsConn) dispatch(data []byte) {
	var cmd command
	if err := json.Unmarshal(data, &cmd); err != nil {
		// A frame that parses as an object with an id still gets its id back.
		var probe struct {
			ID json.RawMessage `json:"id"`
		}
		if json.Unmarshal(data, &probe) != nil || !validID(probe.ID) {
			probe.ID = nullID
		}
		wc.send(probe.ID, nil, badRequest("frame is not a command: "+err.Error()))
		return
	}
	if !validID(cmd.ID) {
		wc.send(nullID, nil, badRequest(`a command needs an "id" (a number or a string)`))
		return
	}
	if cmd.Cmd == "" {
		wc.send(cmd.ID, nil, badRequest(`a command needs a "cmd"`))
		return
	}
	if a := cmd.Args; len(a) > 0 && string(a) != "null" && a[0] != '{' {
		wc.send(cmd.ID, nil, badRequest(`"args" must be an object`))
		return
	}
	s := wc.s
	switch cmd.Cmd {
	case "ping":
		wc.send(cmd.ID, nil, nil)
	case "types":
		wc.send(cmd.ID, s.types(), nil)
	case "flows":
		wc.send(cmd.ID, s.flows(), nil)
	case "statuses":
		wc.send(cmd.ID, s.statuses(), nil)
	case "counters":
		wc.send(cmd.ID, s.counters(), nil)
	case "subscribe":
		wc.subscribe(cmd)
	case "unsubscribe":
		wc.unsubscribe(cmd)
	case "deploy":
		var args struct {
			Flows json.RawMessage `json:"flows"`
			Rev   string          `json:"rev"`
			Mode  string          `json:"mode"`
		}
		if err := decodeArgs(cmd.Args, &args); err != nil {
			wc.send(cmd.ID, nil, badRequest("deploy args: "+err.Error()))
			return
		}
		wc.async(func() {
			rev, aerr := s.deploy(wc.ctx, s.ctx, args.Flows, args.Rev, args.Mode)
			if aerr != nil {
				wc.send(cmd.ID, nil, aerr)
				return
			}
			wc.send(cmd.ID, map[string]string{"rev": rev}, nil)
		})
	case "validate":
		var args struct {
			Flows json.RawMessage `json:"flows"`
		}
		if err := decodeArgs(cmd.Args, &args); err != nil {
			wc.send(cmd.ID, nil, badRequest("validate args: "+err.Error()))
			return
		}
		wc.async(func() {
			ps, aerr := s.validate(wc.ctx, args.Flows)
			if aerr != nil {
				wc.send(cmd.ID, nil, aerr)
				return
			}
			wc.send(cmd.ID, map[string]any{"problems": ps}, nil)
		})
	case "inject":
		var args struct {
			ID string `json:"id"`
		}
		if err := decodeArgs(cmd.Args, &args); err != nil {
			wc.send(cmd.ID, nil, badRequest("inject args: "+err.Error()))
			return
		}
		wc.async(func() {
			wc.send(cmd.ID, nil, s.inject(s.ctx, args.ID))
		})
	case "debug-active":
		var args struct {
			ID     string `json:"id"`
			Active *bool  `json:"active"`
		}
		if err := decodeArgs(cmd.Args, &args); err != nil {
			wc.send(cmd.ID, nil, badRequest("debug-active args: "+err.Error()))
			return
		}
		if args.Active == nil {
			wc.send(cmd.ID, nil, badRequest(`debug-active needs "active": true or false`))
			return
		}
		wc.async(func() {
			res, aerr := s.setActive(args.ID, *args.Active)
			if aerr != nil {
				wc.send(cmd.ID, nil, aerr)
				return
			}
			wc.send(cmd.ID, res, nil)
		})
	default:
		wc.send(cmd.ID, nil, &apiError{Code: codeUnknownCommand, Message: fmt.Sprintf("unknown command %q", cmd.Cmd)})
	}
}

func (wc *wsConn) async(fn func()) {
	wc.wg.Add(1)
	go func() {
		defer wc.wg.Done()
		fn()
	}()
}

func validID(id json.RawMessage) bool {
	if len(id) == 0 {
		return false
	}
	switch id[0] {
	case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	}
	return false
}

// decodeArgs decodes a command's args strictly; absent args decode as {}.
func decodeArgs(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// validPattern checks an MQTT-style topic pattern: "#" only as the last
// level.
func validPattern(p string) bool {
	if p == "" {
		return false
	}
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if s == "" || (strings.Contains(s, "#") && (s != "#" || i != len(parts)-1)) || (strings.Contains(s, "+") && s != "+") {
			return false
		}
	}
	return true
}

// mayMatchStatus reports whether a pattern may match status topics.
func mayMatchStatus(parts []string) bool {
	return parts[0] == "#" || ((parts[0] == "status" || parts[0] == "+") && len(parts) >= 2)
}

func (wc *wsConn) topicsArg(cmd command) ([]string, bool) {
	var args struct {
		Topics []string `json:"topics"`
	}
	if err := decodeArgs(cmd.Args, &args); err != nil {
		wc.send(cmd.ID, nil, badRequest(cmd.Cmd+" args: "+err.Error()))
		return nil, false
	}
	for _, t := range args.Topics {
		if !validPattern(t) {
			wc.send(cmd.ID, nil, badRequest(fmt.Sprintf("topic pattern %q: levels separated by /, + for one level, # last for the rest", t)))
			return nil, false
		}
	}
	return args.Topics, true
}

// subscribe adds engine subscriptions. A status pattern is answered with
// the current statuses right after the reply; the new subscriptions start
// forwarding only after that, so a live status is never overtaken by an
// older snapshot.
func (wc *wsConn) subscribe(cmd command) {
	topics, ok := wc.topicsArg(cmd)
	if !ok {
		return
	}
	var added []*wsSub
	var statusParts [][]string
	wc.mu.Lock()
	for _, t := range topics {
		parts := strings.Split(t, "/")
		if mayMatchStatus(parts) {
			statusParts = append(statusParts, parts)
		}
		dup := false
		for _, ws := range wc.subs {
			dup = dup || ws.pattern == t
		}
		if dup {
			continue
		}
		ws := &wsSub{pattern: t, parts: parts, sub: wc.s.eng.Subscribe(t, subBuffer)}
		wc.subs = append(wc.subs, ws)
		added = append(added, ws)
	}
	wc.mu.Unlock()
	wc.send(cmd.ID, nil, nil)
	if len(statusParts) > 0 {
		wc.statusSnapshot(statusParts)
	}
	for _, ws := range added {
		wc.wg.Add(1)
		go wc.forward(ws)
	}
}

func (wc *wsConn) statusSnapshot(patterns [][]string) {
	st := wc.s.eng.Statuses()
	if len(st) == 0 {
		return
	}
	f, _ := wc.s.eng.Flows()
	now := time.Now()
	for _, id := range sortedIDs(st) {
		topic := engine.TopicStatusPrefix + id
		levels := strings.Split(topic, "/")
		match := false
		for _, p := range patterns {
			match = match || engine.MatchTopic(p, levels)
		}
		if !match {
			continue
		}
		ref := engine.NodeRef{ID: id}
		if n := f.Node(id); n != nil {
			ref = n.Ref()
		}
		wc.out.putEvent(engine.Event{Topic: topic, Time: now, Node: &ref, Data: st[id]})
	}
}

func (wc *wsConn) unsubscribe(cmd command) {
	topics, ok := wc.topicsArg(cmd)
	if !ok {
		return
	}
	wc.mu.Lock()
	for _, t := range topics {
		for i, ws := range wc.subs {
			if ws.pattern == t {
				ws.sub.Close()
				wc.subs = append(wc.subs[:i:i], wc.subs[i+1:]...)
				break
			}
		}
	}
	wc.mu.Unlock()
	wc.send(cmd.ID, nil, nil)
}

// forward moves a subscription's events into the outbox. An event matching
// several of the connection's patterns is forwarded once, by the earliest
// subscription.
func (wc *wsConn) forward(ws *wsSub) {
	defer wc.wg.Done()
	var seen uint64
	for ev := range ws.sub.C {
		if d := ws.sub.Dropped(); d > seen {
			wc.out.addDropped(d - seen)
			seen = d
		}
		if wc.owner(ev.Topic) != ws {
			continue
		}
		wc.out.putEvent(ev)
	}
}

// owner returns the earliest subscription whose pattern matches topic.
func (wc *wsConn) owner(topic string) *wsSub {
	levels := strings.Split(topic, "/")
	wc.mu.Lock()
	defer wc.mu.Unlock()
	for _, ws := range wc.subs {
		if engine.MatchTopic(ws.parts, levels) {
			return ws
		}
	}
	return nil
}

// writeLoop writes queued replies and events and pings the browser. A
// failed write closes the connection, which ends the reader.
func (wc *wsConn) writeLoop() {
	defer wc.wg.Done()
	ping := time.NewTicker(wc.s.opts.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-wc.ctx.Done():
			return
		case <-ping.C:
			if err := wc.c.WriteControl(websocket.PingMessage, nil, time.Now().Add(wc.s.opts.WriteTimeout)); err != nil {
				wc.fail()
				return
			}
		case <-wc.out.wake:
			items, dropped := wc.out.take()
			if dropped > 0 {
				ev := engine.Event{Topic: TopicDropped, Time: time.Now(), Data: map[string]uint64{"count": dropped}}
				if !wc.writeEvent(ev) {
					return
				}
			}
			for _, it := range items {
				ok := true
				if it.reply {
					ok = wc.write(it.data)
					<-wc.slots
				} else {
					ok = wc.writeEvent(it.ev)
				}
				if !ok {
					return
				}
			}
		}
	}
}

func (wc *wsConn) write(b []byte) bool {
	wc.c.SetWriteDeadline(time.Now().Add(wc.s.opts.WriteTimeout))
	if err := wc.c.WriteMessage(websocket.TextMessage, b); err != nil {
		wc.s.log.Debug("editor connection write", "err", err)
		wc.fail()
		return false
	}
	return true
}

func (wc *wsConn) writeEvent(ev engine.Event) bool {
	b, err := marshalEvent(ev)
	if err != nil {
		wc.s.log.Warn("encoding event", "topic", ev.Topic, "err", err)
		return true
	}
	return wc.write(b)
}

// debugWire is a debug event's data as sent to the browser.
type debugWire struct {
	Property  string `json:"property"`
	Value     any    `json:"value"`
	Truncated bool   `json:"truncated,omitempty"`
}

// marshalEvent encodes {"event": ev}. A debug value whose JSON is over
// MaxDebugValue becomes the first MaxDebugValue bytes of that JSON, as a
// string, with "truncated": true.
func marshalEvent(ev engine.Event) ([]byte, error) {
	if d, ok := ev.Data.(*engine.DebugData); ok {
		w := debugWire{Property: d.Property}
		v, err := json.Marshal(d.Value)
		switch {
		case err != nil:
			w.Value = "cannot encode value: " + err.Error()
		case len(v) > MaxDebugValue:
			n := MaxDebugValue
			for n > 0 && !utf8.RuneStart(v[n]) {
				n--
			}
			w.Value, w.Truncated = string(v[:n]), true
		default:
			w.Value = json.RawMessage(v)
		}
		ev.Data = w
	}
	return json.Marshal(struct {
		Event engine.Event `json:"event"`
	}{ev})
}
