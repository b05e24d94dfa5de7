package outbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DefaultMaxDead bounds the dead-letter store when Options.MaxDead is 0.
const DefaultMaxDead = 1000

var deadBucket = []byte("dead")

// Dead is a message the server will never take, moved out of the queue so
// that the messages behind it are delivered. It keeps its seq.
type Dead struct {
	Entry
	Reason string
	At     time.Time
}

// deadStore is the bounded dead-letter store (memory copy of the bucket).
type deadStore struct {
	byseq map[uint64]Dead
}

// get returns the live entry seq. Called with o.mu held.
func (x *index) get(seq uint64) (Entry, bool) {
	i := x.find(seq)
	if i == len(x.slots) || x.slots[i].Seq != seq || !x.slots[i].live {
		return Entry{}, false
	}
	return x.slots[i].Entry, true
}

func encodeDead(d Dead) []byte {
	buf := binary.AppendUvarint(nil, uint64(len(d.Reason)))
	buf = append(buf, d.Reason...)
	buf = binary.AppendVarint(buf, d.At.UnixMilli())
	return encode(buf, d.Record)
}

func decodeDead(seq uint64, v []byte) (Dead, error) {
	n, w := binary.Uvarint(v)
	if w <= 0 || n > uint64(len(v)-w) {
		return Dead{}, errors.New("malformed reason length")
	}
	reason := string(v[w : w+int(n)])
	v = v[w+int(n):]
	ms, w := binary.Varint(v)
	if w <= 0 {
		return Dead{}, errors.New("malformed time")
	}
	rec, err := decode(v[w:], nil)
	if err != nil {
		return Dead{}, err
	}
	return Dead{Entry: Entry{Seq: seq, Record: rec}, Reason: reason, At: time.UnixMilli(ms)}, nil
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// loadDead restores the dead letters. Called from load's transaction.
func (o *Outbox) loadDead(tx *bolt.Tx) error {
	o.dead.byseq = map[uint64]Dead{}
	b, err := tx.CreateBucketIfNotExists(deadBucket)
	if err != nil {
		return fmt.Errorf("creating dead-letter bucket: %w", err)
	}
	return b.ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("reading dead letters: %d-byte key: not an outbox file", len(k))
		}
		seq := binary.BigEndian.Uint64(k)
		d, err := decodeDead(seq, v)
		if err != nil {
			return fmt.Errorf("reading dead letter %d: %w", seq, err)
		}
		o.dead.byseq[seq] = d
		return nil
	})
}

// DeadLetter moves entry seq out of the queue into the dead-letter store
// with its reason, durably when the outbox is on disk. The store is
// bounded (Options.MaxDead): the oldest dead letters are forgotten first.
// It reports false when seq is not held.
func (o *Outbox) DeadLetter(seq uint64, reason string) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false, ErrClosed
	}
	e, ok := o.idx.get(seq)
	if !ok {
		return false, nil
	}
	d := Dead{Entry: e, Reason: reason, At: time.Now()}
	evict := o.deadEvictions(1)
	if o.db != nil {
		err := o.update(func(tx *bolt.Tx) error {
			if err := tx.Bucket(bucketName).Delete(seqKey(seq)); err != nil {
				return err
			}
			db := tx.Bucket(deadBucket)
			for _, s := range evict {
				if err := db.Delete(seqKey(s)); err != nil {
					return err
				}
			}
			return db.Put(seqKey(seq), encodeDead(d))
		})
		if err != nil {
			return false, fmt.Errorf("dead-lettering entry %d: %w", seq, err)
		}
	}
	for _, s := range evict {
		delete(o.dead.byseq, s)
	}
	o.dead.byseq[seq] = d
	o.idx.remove(seq)
	o.idx.tidy()
	o.broadcast()
	return true, nil
}

// deadEvictions returns the oldest dead seqs to forget so that n more fit.
func (o *Outbox) deadEvictions(n int) []uint64 {
	limit := o.opts.MaxDead
	if limit <= 0 {
		limit = DefaultMaxDead
	}
	over := len(o.dead.byseq) + n - limit
	if over <= 0 {
		return nil
	}
	seqs := o.deadSeqs()
	return seqs[:min(over, len(seqs))]
}

func (o *Outbox) deadSeqs() []uint64 {
	seqs := make([]uint64, 0, len(o.dead.byseq))
	for s := range o.dead.byseq {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs
}

// update runs fn in a write transaction, turning a bbolt panic on a
// corrupt file into an error.
func (o *Outbox) update(fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("database corrupted: %v", r)
		}
	}()
	return o.db.Update(fn)
}

// DeadLetters returns the dead letters, oldest seq first.
func (o *Outbox) DeadLetters() []Dead {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]Dead, 0, len(o.dead.byseq))
	for _, s := range o.deadSeqs() {
		out = append(out, o.dead.byseq[s])
	}
	return out
}

// DeadCount is the number of dead letters held.
func (o *Outbox) DeadCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.dead.byseq)
}

// DropDead forgets dead letters (all of them when seqs is empty) and
// returns how many were forgotten.
func (o *Outbox) DropDead(seqs ...uint64) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, ErrClosed
	}
	if len(seqs) == 0 {
		seqs = o.deadSeqs()
	}
	var gone []uint64
	for _, s := range seqs {
		if _, ok := o.dead.byseq[s]; ok {
			gone = append(gone, s)
		}
	}
	if o.db != nil && len(gone) > 0 {
		err := o.update(func(tx *bolt.Tx) error {
			b := tx.Bucket(deadBucket)
			for _, s := range gone {
				if err := b.Delete(seqKey(s)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("dropping dead letters: %w", err)
		}
	}
	for _, s := range gone {
		delete(o.dead.byseq, s)
	}
	return len(gone), nil
}

// RetryDead puts dead letters (all of them when seqs is empty) back at
// the end of the queue, with new seqs, and returns how many.
func (o *Outbox) RetryDead(seqs ...uint64) (int, error) {
	o.mu.Lock()
	if len(seqs) == 0 {
		seqs = o.deadSeqs()
	}
	var recs []Record
	var found []uint64
	for _, s := range seqs {
		if d, ok := o.dead.byseq[s]; ok {
			recs = append(recs, d.Record)
			found = append(found, s)
		}
	}
	o.mu.Unlock()
	if len(recs) == 0 {
		return 0, nil
	}
	// Appended first, then forgotten: a crash in between leaves a
	// duplicate dead letter, never a lost message.
	if _, err := o.Append(context.Background(), recs...); err != nil {
		return 0, fmt.Errorf("retrying dead letters: %w", err)
	}
	if _, err := o.DropDead(found...); err != nil {
		return 0, err
	}
	return len(found), nil
}
