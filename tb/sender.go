package tb

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// poisonReason is the dead-letter reason of a message the server closed the
// connection on, without a PUBACK, poisonDrops times in a row (MQTT 3.1.1
// has no other way to say "payload invalid").
const (
	poisonDrops  = 3
	poisonReason = "ThingsBoard closed the connection on this message 3 times (device profile expects PROTOBUF or custom topics?)"
	// poisonWindow: a close that long after the message was sent is not
	// taken as the server's answer to it.
	poisonWindow = 3 * time.Second
)

// sendLoop publishes the outbox in order, in rounds, until the connection
// is lost. A round ends early when the server refuses a message it may
// take later (MQTT 5 PUBACK 0x97, 0x80, 0x83...): the round's messages in
// flight are settled, the sender backs off (exponential, jittered) and
// the next round starts again from the oldest message still held.
func (c *client) sendLoop(cn *conn) {
	refusals := 0
	for {
		refused, acked := c.sendRound(cn)
		if !refused {
			return
		}
		if acked > 0 {
			refusals = 0
		}
		refusals++
		d := c.backoff(refusals)
		c.log.Warn("server refused a message for now; backing off before sending again", "wait", d)
		if !c.sleepConn(cn, d) {
			return
		}
	}
}

// sendRound publishes with a bounded in-flight window, removing each
// message when its PUBACK arrives. It reports whether it ended on a
// refusal (false: the connection was lost) and how many were acknowledged.
func (c *client) sendRound(cn *conn) (refused bool, acked int) {
	type flight struct {
		seq   uint64
		topic string
		tok   pubToken
	}
	c.mu.Lock()
	window := c.inflight
	c.mu.Unlock()
	inflight := make(chan flight, window)
	collected := make(chan struct{})
	refusedCh := make(chan struct{})
	var refuse sync.Once
	go func() {
		defer close(collected)
		for f := range inflight {
			select {
			case <-f.tok.Done():
			case <-cn.lost:
				return
			}
			err := f.tok.Error()
			if err == nil {
				c.ob.Remove(f.seq)
				c.completeAck(f.seq, nil)
				acked++
				continue
			}
			var pe *PublishError
			if !errors.As(err, &pe) {
				cn.markLost(fmt.Errorf("tb: publish not acknowledged: %w", err))
				return
			}
			if pe.Permanent() {
				c.deadLetter(f.seq, f.topic, pe.Error(), pe.Reason)
				continue
			}
			c.log.Warn("server refused a message; it is kept and sent again", "seq", f.seq, "topic", f.topic, "error", pe)
			refuse.Do(func() { close(refusedCh) })
		}
	}()
	defer func() {
		close(inflight)
		<-collected
		select {
		case <-refusedCh:
			refused = cn.ctx.Err() == nil
		default:
		}
	}()
	var last uint64
	for {
		batch := c.ob.Next(last, 256)
		if len(batch) == 0 {
			select {
			case <-c.ob.Notify():
				continue
			case <-cn.lost:
				return
			case <-refusedCh:
				return
			}
		}
		lim := c.limits()
		if !c.waitPause(cn) {
			return
		}
		for _, e := range batch {
			select {
			case <-refusedCh:
				return
			default:
			}
			if err := lim.wait(cn.ctx, e.Topic, e.Payload); err != nil {
				return
			}
			if cn.firstSeq.Load() == 0 {
				cn.firstAt.Store(time.Now().UnixNano())
				cn.firstSeq.Store(e.Seq)
			}
			tok := cn.publish(e.Topic, 1, e.Payload)
			select {
			case inflight <- flight{e.Seq, e.Topic, tok}:
			case <-cn.lost:
				return
			}
			last = e.Seq
		}
	}
}

// sleepConn waits d or until the connection is lost.
func (c *client) sleepConn(cn *conn, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-cn.lost:
		return false
	}
}

// deadLetter moves a message the server will never take out of the
// outbox, fails its Ack with a *DeadLetterError and reports it.
func (c *client) deadLetter(seq uint64, topic, reason string, code byte) {
	ok, err := c.ob.DeadLetter(seq, reason)
	if err != nil {
		c.reportError(fmt.Errorf("tb: dead-lettering message %d: %w", seq, err))
		return
	}
	if !ok {
		return
	}
	de := &DeadLetterError{Seq: seq, Topic: topic, Reason: reason, Code: code}
	c.log.Error("message dead-lettered: the server will not take it", "seq", seq, "topic", topic, "reason", reason)
	c.completeAck(seq, de)
	c.mu.Lock()
	c.lastDead = de
	c.mu.Unlock()
	select {
	case c.statusCh <- struct{}{}:
	default:
	}
	if c.cfg.OnError != nil {
		func() {
			defer func() { _ = recover() }()
			c.cfg.OnError(de)
		}()
	}
}

// checkPoison runs after a connection ended: when the server closed it
// right after the oldest message was sent, with no PUBACK, poisonDrops
// times in a row, that message is dead-lettered (MQTT 3.1.1 closes the
// connection on a payload it cannot parse, so the ordered outbox would
// send it first forever).
func (c *client) checkPoison(cn *conn) {
	first := cn.firstSeq.Load()
	head := c.ob.Next(0, 1)
	sentAt := time.Unix(0, cn.firstAt.Load())
	if first == 0 || len(head) == 0 || head[0].Seq != first || errors.Is(cn.err, ErrClosed) ||
		cn.lostAt.Sub(sentAt) > poisonWindow {
		c.poisonSeq, c.poisonN = 0, 0
		return
	}
	if c.poisonSeq != first {
		c.poisonSeq, c.poisonN = first, 0
	}
	c.poisonN++
	c.log.Warn("connection closed right after the oldest message was sent", "seq", first, "times", c.poisonN)
	if c.poisonN >= poisonDrops {
		c.poisonSeq, c.poisonN = 0, 0
		c.deadLetter(first, head[0].Topic, poisonReason, 0)
	}
}

// dropDelay is the wait before redialling after a connection ended: at
// least a jittered ReconnectMin, growing while connections keep ending
// soon after they start, and Config.TakeoverBackoff when the server said
// another connection took the session over.
func (c *client) dropDelay(err error, lived time.Duration, drops *int) time.Duration {
	if lived > 30*time.Second {
		*drops = 0
	}
	*drops++
	var de *DisconnectError
	if errors.As(err, &de) && de.Reason == ReasonSessionTakenOver {
		return jitter(c.cfg.TakeoverBackoff)
	}
	return c.backoff(*drops)
}
