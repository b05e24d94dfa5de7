package tb

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// --- requests --------------------------------------------------------------

// nextRequestID returns ids for attribute requests and client RPC. They
// start high so that a broker that echoes our own publishes never confuses
// them with server-side RPC ids, which start at 0.
func (c *client) nextRequestID() int64 {
	return 1_000_000 + c.reqSeq.Add(1)
}

// request publishes payload on reqTopic and waits for a downlink on
// respTopic. The request is published again after every reconnect until it
// is answered or ctx ends. Without a deadline, Config.RequestTimeout applies.
func (c *client) request(ctx context.Context, reqTopic, respTopic string, payload []byte) ([]byte, error) {
	if err := c.limits().checkSize(reqTopic, payload); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
	}
	p := &pendingReq{reqTopic: reqTopic, payload: payload, ch: make(chan []byte, 1)}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.pending[respTopic] = p
	cn := c.conn
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.pending[respTopic] == p {
			delete(c.pending, respTopic)
		}
		c.mu.Unlock()
	}()
	if cn != nil {
		if err := c.limits().wait(ctx, reqTopic, payload); err != nil {
			return nil, err
		}
		// The outcome of this publish does not matter: a lost connection
		// republishes every pending request after the next CONNACK.
		cn.publish(reqTopic, c.cfg.QoS, payload)
	}
	select {
	case b := <-p.ch:
		return b, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: no answer on %q: %w", ErrTimeout, respTopic, ctx.Err())
		}
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, ErrClosed
	}
}

// requestOn publishes payload on the connection cn once and waits for the
// answer on respTopic. It is never published again: when cn is lost first
// the outcome is unknown (ErrOutcomeUnknown).
func (c *client) requestOn(ctx context.Context, cn *conn, reqTopic, respTopic string, payload []byte) ([]byte, error) {
	p := &pendingReq{reqTopic: reqTopic, payload: payload, ch: make(chan []byte, 1), once: true}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.pending[respTopic] = p
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.pending[respTopic] == p {
			delete(c.pending, respTopic)
		}
		c.mu.Unlock()
	}()
	tok := cn.publish(reqTopic, c.cfg.QoS, payload)
	refused := tok.Done()
	for {
		select {
		case <-refused:
			// An MQTT 5 PUBACK with an error code: no answer will come.
			var pe *PublishError
			if errors.As(tok.Error(), &pe) {
				return nil, fmt.Errorf("tb: request on %q: %w", reqTopic, pe)
			}
			refused = nil
			continue
		case b := <-p.ch:
			return b, nil
		case <-cn.lost:
			select {
			case b := <-p.ch:
				return b, nil
			default:
			}
			return nil, ErrOutcomeUnknown
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w: no answer on %q: %w", ErrTimeout, respTopic, ctx.Err())
			}
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// callOnce sends a client-side RPC at most once: it waits for a
// connection, sends the request and waits for the answer; a connection
// lost in between fails it with ErrOutcomeUnknown. Without a deadline on
// ctx, Config.CallTimeout applies.
func (c *client) callOnce(ctx context.Context, reqTopic, respTopic string, payload []byte) ([]byte, error) {
	if err := c.limits().checkSize(reqTopic, payload); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.CallTimeout)
		defer cancel()
	}
	for {
		if err := c.waitConnected(ctx); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w: not connected: %w", ErrTimeout, err)
			}
			return nil, err
		}
		cn, lim, closing := c.snapshot()
		if closing {
			return nil, ErrClosed
		}
		if cn == nil {
			continue
		}
		if err := lim.wait(ctx, reqTopic, payload); err != nil {
			return nil, err
		}
		return c.requestOn(ctx, cn, reqTopic, respTopic, payload)
	}
}

// resolvePending completes the request waiting for topic, if any.
func (c *client) resolvePending(topic string, payload []byte) {
	c.mu.Lock()
	p, ok := c.pending[topic]
	if ok {
		delete(c.pending, topic)
	}
	c.mu.Unlock()
	if !ok {
		c.log.Debug("response without a pending request dropped", "topic", topic)
		return
	}
	select {
	case p.ch <- payload:
	default:
	}
}

// sendReliable publishes a message that is not kept in the outbox (claims,
// RPC replies) and waits for its acknowledgement, waiting for a connection
// and publishing again after a reconnect until ctx ends. Without a deadline
// on ctx, Config.RequestTimeout applies.
func (c *client) sendReliable(ctx context.Context, topic string, payload []byte) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
	}
	for {
		if err := c.waitConnected(ctx); err != nil {
			return fmt.Errorf("tb: sending to %q: waiting for a connection: %w", topic, err)
		}
		err := c.publishNow(ctx, topic, payload)
		if err == nil || ctx.Err() != nil || errors.Is(err, ErrPayloadTooLarge) {
			return err
		}
		c.log.Debug("publish interrupted; sending again after reconnect", "topic", topic, "error", err)
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
