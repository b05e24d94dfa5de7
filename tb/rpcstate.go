package tb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ReplyLater, returned as the result of an RPCHandler, defers the reply:
// the caller answers later with Device.ReplyRPC (Gateway.ReplyDeviceRPC),
// for example from another part of a flow. A deferred request expires after
// Config.RPCHandlerTimeout.
var ReplyLater any = replyLater{}

type replyLater struct{}

// ErrUnknownRequest is returned when replying to an RPC that is unknown,
// already answered or expired.
var ErrUnknownRequest = errors.New("tb: unknown, answered or expired rpc request")

// rpcState de-duplicates server-side RPCs (ThingsBoard re-sends pending
// requests after a reconnect) and keeps deferred requests and replies that
// could not be sent yet. Keys are device + id + request payload.
type rpcState struct {
	mu       sync.Mutex
	running  map[string]bool
	unsent   map[string][]byte
	deferred map[string]*deferredRPC // by device + "\x00" + id
	active   map[string]bool         // refs whose handler runs
	early    map[string][]byte       // replies made before the handler returned ReplyLater
}

type deferredRPC struct {
	key   string
	send  func(reply []byte)
	timer *time.Timer
}

func newRPCState() *rpcState {
	return &rpcState{
		running: map[string]bool{}, unsent: map[string][]byte{}, deferred: map[string]*deferredRPC{},
		active: map[string]bool{}, early: map[string][]byte{},
	}
}

// start decides what to do with a delivered request: run the handler
// (true), or nothing because it runs already; a reply kept from an
// interrupted exchange is returned for sending again.
func (s *rpcState) start(key string) (run bool, resend []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[key] {
		return false, nil
	}
	if r, ok := s.unsent[key]; ok {
		return false, r
	}
	s.running[key] = true
	return true, nil
}

// finished records the reply of a request before it is sent.
func (s *rpcState) finished(key string, reply []byte) {
	s.mu.Lock()
	delete(s.running, key)
	if len(s.unsent) > 1000 {
		clear(s.unsent)
	}
	s.unsent[key] = reply
	s.mu.Unlock()
}

// sent forgets a reply the server acknowledged.
func (s *rpcState) sent(key string) {
	s.mu.Lock()
	delete(s.unsent, key)
	s.mu.Unlock()
}

// begin marks a handler as running for ref: a reply made before it
// returns ReplyLater is kept.
func (s *rpcState) begin(ref string) {
	s.mu.Lock()
	s.active[ref] = true
	s.mu.Unlock()
}

// end marks the handler of ref as returned with its own result.
func (s *rpcState) end(ref string) {
	s.mu.Lock()
	delete(s.active, ref)
	delete(s.early, ref)
	s.mu.Unlock()
}

// deferReply keeps a request answered later by ReplyRPC, until ttl; a
// reply that came while the handler was still running is sent at once.
func (s *rpcState) deferReply(ref, key string, ttl time.Duration, send func([]byte)) {
	s.mu.Lock()
	delete(s.active, ref)
	if r, ok := s.early[ref]; ok {
		delete(s.early, ref)
		s.mu.Unlock()
		send(r)
		return
	}
	d := &deferredRPC{key: key, send: send}
	d.timer = time.AfterFunc(ttl, func() {
		s.mu.Lock()
		if s.deferred[ref] == d {
			delete(s.deferred, ref)
			delete(s.running, key)
		}
		s.mu.Unlock()
	})
	s.deferred[ref] = d
	s.mu.Unlock()
}

// reply answers a deferred request with res (an error is sent as
// {"error": "..."}).
func (s *rpcState) reply(ref string, res any) error {
	if _, later := res.(replyLater); later {
		return errors.New("tb: ReplyLater is not a reply")
	}
	var err error
	if e, ok := res.(error); ok {
		res, err = nil, e
	}
	s.mu.Lock()
	d, ok := s.deferred[ref]
	if ok {
		delete(s.deferred, ref)
		d.timer.Stop()
	} else if s.active[ref] {
		s.early[ref] = rpcReply(res, err)
	}
	active := s.active[ref]
	s.mu.Unlock()
	if !ok {
		if active {
			return nil
		}
		return ErrUnknownRequest
	}
	d.send(rpcReply(res, err))
	return nil
}

func rpcRef(device string, id int) string { return fmt.Sprintf("%s\x00%d", device, id) }

// serve answers req with fn (an error reply when fn is nil, saying
// noHandler), deferring the reply when fn returns ReplyLater. finish
// receives the reply data; the caller sends it.
func (s *rpcState) serve(c *client, key string, req RPCRequest, fn RPCHandler, noHandler string, finish func(data []byte)) {
	if fn == nil {
		finish(mustJSON(map[string]string{"error": noHandler}))
		return
	}
	ref := rpcRef(req.Device, req.ID)
	s.begin(ref)
	res, err := c.callRPC(fn, req)
	if _, later := res.(replyLater); later && err == nil {
		s.deferReply(ref, key, c.cfg.RPCHandlerTimeout, finish)
		return
	}
	s.end(ref)
	finish(rpcReply(res, err))
}

// callRPC runs a handler under Config.RPCHandlerTimeout, recovering a
// panic as an error result.
func (c *client) callRPC(fn RPCHandler, req RPCRequest) (res any, err error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.RPCHandlerTimeout)
	defer cancel()
	runGuarded("rpc "+req.Method, c.cfg.SlowHandler, c.reportError, func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("handler panicked: %v", r)
				panic(r)
			}
		}()
		res, err = fn(ctx, req)
	})
	return res, err
}
