package tb

import (
	"fmt"
	"time"

	"github.com/tbflow/tbflow/tb/internal/outbox"
)

// DeadLetter is a message the server will never take (MQTT 5 PUBACK 0x99
// payload invalid or 0x90 topic invalid, or a message the server closed
// the connection on repeatedly under MQTT 3.1.1). It was moved out of the
// outbox so that the messages behind it are delivered; it is kept, bounded,
// in the outbox file when the outbox is on disk.
type DeadLetter struct {
	Seq     uint64
	Topic   string
	Payload []byte
	Reason  string
	At      time.Time
}

func deadLetters(ob *outbox.Outbox) []DeadLetter {
	var out []DeadLetter
	for _, d := range ob.DeadLetters() {
		out = append(out, DeadLetter{Seq: d.Seq, Topic: d.Topic, Payload: d.Payload, Reason: d.Reason, At: d.At})
	}
	return out
}

// DeadLetters lists the dead letters, oldest first.
func (d *Device) DeadLetters() []DeadLetter { return deadLetters(d.c.ob) }

// RetryDeadLetters puts dead letters (every one when seqs is empty) back
// at the end of the outbox, for example after the device profile was
// fixed, and returns how many.
func (d *Device) RetryDeadLetters(seqs ...uint64) (int, error) {
	n, err := d.c.ob.RetryDead(seqs...)
	if err != nil {
		return n, fmt.Errorf("tb: %w", err)
	}
	return n, nil
}

// DropDeadLetters forgets dead letters (every one when seqs is empty) and
// returns how many.
func (d *Device) DropDeadLetters(seqs ...uint64) (int, error) {
	n, err := d.c.ob.DropDead(seqs...)
	if err != nil {
		return n, fmt.Errorf("tb: %w", err)
	}
	return n, nil
}

// OutboxFile is a closed outbox file opened for inspection by tools (the
// tbflow outbox command): nothing may be using it.
type OutboxFile struct{ ob *outbox.Outbox }

// OpenOutboxFile opens an outbox file that no running client holds.
func OpenOutboxFile(path string) (*OutboxFile, error) {
	ob, err := outbox.Open(outbox.Options{Path: path, LockTimeout: 500 * time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("tb: %w", err)
	}
	return &OutboxFile{ob: ob}, nil
}

// Queued is the number of messages waiting to be sent.
func (f *OutboxFile) Queued() int { return f.ob.Len() }

// DeadLetters lists the dead letters, oldest first.
func (f *OutboxFile) DeadLetters() []DeadLetter { return deadLetters(f.ob) }

// Retry puts dead letters (every one when seqs is empty) back in the queue.
func (f *OutboxFile) Retry(seqs ...uint64) (int, error) { return f.ob.RetryDead(seqs...) }

// Drop forgets dead letters (every one when seqs is empty).
func (f *OutboxFile) Drop(seqs ...uint64) (int, error) { return f.ob.DropDead(seqs...) }

// Close writes and closes the file.
func (f *OutboxFile) Close() error { return f.ob.Close() }
