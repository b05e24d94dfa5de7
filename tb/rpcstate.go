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
}

type deferredRPC struct {
	key   string
	send  func(reply []byte)
	timer *time.Timer
}

func newRPCState() *rpcState {
	return &rpcState{running: map[string]bool{}, unsent: map[string][]byte{}, deferred: map[string]*deferredRPC{}}
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

// deferReply keeps a request answered later by ReplyRPC, until ttl.
func (s *rpcState) deferReply(ref, key string, ttl time.Duration, send func([]byte)) {
	d := &deferredRPC{key: key, send: send}
	s.mu.Lock()
	s.deferred[ref] = d
	s.mu.Unlock()
	d.timer = time.AfterFunc(ttl, func() {
		s.mu.Lock()
		if s.deferred[ref] == d {
			delete(s.deferred, ref)
			delete(s.running, key)
		}
		s.mu.Unlock()
	})
}

// reply answers a deferred request.
func (s *rpcState) reply(ref string, res any, err error) error {
	s.mu.Lock()
	d, ok := s.deferred[ref]
	if ok {
		delete(s.deferred, ref)
	}
	s.mu.Unlock()
	if !ok {
		return ErrUnknownRequest
	}
	d.timer.Stop()
	if _, later := res.(replyLater); later {
		return errors.New("tb: ReplyLater is not a reply")
	}
	d.send(rpcReply(res, err))
	return nil
}

func rpcRef(device string, id int) string { return fmt.Sprintf("%s\x00%d", device, id) }

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
