package tb

import (
	"context"
	"fmt"
	"sync"
)

// Ack is the outcome of one publish. For QoS 1 it completes when the server
// acknowledged the message with a PUBACK (nil error), or with ErrDropped or
// ErrClosed. For QoS 0 it completes when the message was written to the
// connection: QoS 0 has no acknowledgement.
type Ack struct {
	once sync.Once
	done chan struct{}
	err  error
	seq  uint64
	// tok, for QoS 0, is the write's token: the Ack completes with it, so a
	// QoS 0 publish needs neither a goroutine nor a wait.
	tok interface {
		Done() <-chan struct{}
		Error() error
	}
}

func newAck() *Ack { return &Ack{done: make(chan struct{})} }

func (a *Ack) complete(err error) {
	a.once.Do(func() {
		a.err = err
		close(a.done)
	})
}

// Done is closed when the outcome is known.
func (a *Ack) Done() <-chan struct{} {
	if a.tok != nil {
		return a.tok.Done()
	}
	return a.done
}

// Err returns the outcome once Done is closed (nil means acknowledged), and
// nil before.
func (a *Ack) Err() error {
	select {
	case <-a.Done():
		return a.result()
	default:
		return nil
	}
}

func (a *Ack) result() error {
	if a.tok != nil {
		if err := a.tok.Error(); err != nil {
			return fmt.Errorf("%w: %v", ErrNotConnected, err)
		}
		return nil
	}
	return a.err
}

// Wait blocks until the outcome is known or ctx ends. A context error means
// only that the caller stopped waiting: the message stays in the outbox and
// is still delivered.
func (a *Ack) Wait(ctx context.Context) error {
	select {
	case <-a.Done():
		return a.result()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Seq is the message's outbox sequence number (0 for QoS 0).
func (a *Ack) Seq() uint64 { return a.seq }
