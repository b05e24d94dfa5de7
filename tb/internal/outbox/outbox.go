package outbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Record is one MQTT publish to make.
type Record struct {
	Topic   string
	Payload []byte
}

// Entry is a stored record with its sequence number (strictly increasing,
// never reused in one store, survives restarts).
type Entry struct {
	Seq uint64
	Record
}

// FullPolicy says what Append does when the records do not fit.
type FullPolicy int

const (
	// Block makes Append wait for space until its ctx ends, then return
	// ErrFull (wrapped with ctx.Err()).
	Block FullPolicy = iota
	// Reject makes Append return ErrFull at once.
	Reject
	// DropOldest makes Append evict the oldest entries to make room;
	// Options.OnDrop is told their seqs.
	DropOldest
)

func (p FullPolicy) String() string {
	switch p {
	case Block:
		return "block"
	case Reject:
		return "reject"
	case DropOldest:
		return "drop-oldest"
	}
	return fmt.Sprintf("FullPolicy(%d)", int(p))
}

var (
	// ErrFull is returned by Append when the records do not fit (see
	// FullPolicy).
	ErrFull = errors.New("outbox full")
	// ErrClosed is returned by calls on a closed Outbox, and by Appends
	// that were waiting for space when it was closed.
	ErrClosed = errors.New("outbox closed")
	// ErrTooLarge is returned by Append for records that could never fit:
	// more bytes than MaxBytes or more records than MaxEntries.
	ErrTooLarge = errors.New("records larger than the outbox")
)

// Defaults for the zero values of Options.
const (
	DefaultMaxBytes      = 32 << 20
	DefaultFlushInterval = time.Second
	DefaultLockTimeout   = time.Second
)

const (
	// maxBatchRecords bounds the records of one transaction (a commit
	// always takes at least one whole Append, however large).
	maxBatchRecords = 4096
	// removeKickAt is the number of pending removals that makes the
	// committer write them without waiting for the next commit or tick.
	removeKickAt = 1024
	valueVersion = 1
)

var bucketName = []byte("outbox")

// Options configure Open.
type Options struct {
	Path       string              // bbolt file; "" = in memory only (same semantics, no durability)
	MaxBytes   int64               // bound on stored bytes (topic+payload+EntryOverhead per entry); 0 = 32 MiB
	MaxEntries int                 // 0 = no bound on the count
	Policy     FullPolicy          // what Append does when full; default Block
	OnDrop     func(seqs []uint64) // DropOldest only; called without locks held
	NoSync     bool                // skip fsync per commit (survives process crash, not power loss); default false = fsync
	MaxDead    int                 // bound on dead letters kept; 0 = DefaultMaxDead
	// EntryOverhead is charged against MaxBytes for every entry besides
	// its topic and payload: the memory an entry holds beyond its bytes
	// (its index slot, the payload's allocation rounding, and whatever
	// the caller keeps per entry, such as an acknowledgement to complete).
	// 0 charges the bytes only.
	EntryOverhead int64

	// FlushInterval bounds how long removals may stay unwritten when
	// nothing else is committed; 0 = 1 s.
	FlushInterval time.Duration
	// LockTimeout is how long Open waits for another process holding the
	// file; 0 = 1 s.
	LockTimeout time.Duration

	beforeTake func() // test hook: run by the committer before it takes a batch
}

// Stats are counters for tests, benchmarks and diagnostics.
type Stats struct {
	Commits  uint64 // write transactions made (disk mode)
	Appends  uint64 // Append calls stored
	Records  uint64 // records stored
	MaxBatch int    // most Append calls grouped into one transaction
	Removed  uint64 // entries forgotten by Remove
	Dropped  uint64 // entries evicted by DropOldest
}

// Outbox is a bounded, ordered, durable queue of records. It is safe for
// concurrent use.
type Outbox struct {
	opts   Options
	db     *bolt.DB // nil in memory mode
	notify chan struct{}
	kick   chan struct{}
	done   chan struct{} // closed when the committer exits

	mu       sync.Mutex
	idx      index
	nextSeq  uint64
	resBytes int64 // bytes of Appends queued for the committer
	resCount int   // records of Appends queued for the committer
	queue    []*request
	removals []uint64 // removed in memory, not yet on disk
	flushers []chan error
	changed  chan struct{} // closed (and replaced) when space may have been freed
	waiters  int           // Appends waiting on changed
	closed   bool
	stats    Stats
	dead     deadStore
}

type request struct {
	recs  []Record
	size  int64
	seqs  []uint64
	err   error
	ready chan struct{}
}

// Open opens (creating if needed) the outbox file at opts.Path, or an
// in-memory outbox when Path is empty. It reads the whole file to restore
// the entries and the next sequence number.
func Open(opts Options) (*Outbox, error) {
	switch {
	case opts.MaxBytes < 0:
		return nil, fmt.Errorf("opening outbox: negative MaxBytes %d", opts.MaxBytes)
	case opts.MaxEntries < 0:
		return nil, fmt.Errorf("opening outbox: negative MaxEntries %d", opts.MaxEntries)
	case opts.Policy < Block || opts.Policy > DropOldest:
		return nil, fmt.Errorf("opening outbox: unknown full policy %d", int(opts.Policy))
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	o := &Outbox{
		opts:    opts,
		notify:  make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
		nextSeq: 1,
		dead:    deadStore{byseq: map[uint64]Dead{}},
	}
	o.idx.overhead = max(opts.EntryOverhead, 0)
	if opts.Path == "" {
		close(o.done)
		return o, nil
	}
	db, file, err := openDB(opts)
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("opening outbox %q: file locked by another process (waited %v): %w", opts.Path, opts.LockTimeout, err)
		}
		return nil, fmt.Errorf("opening outbox %q: %w", opts.Path, err)
	}
	if err := o.load(db); err != nil {
		release(db, file)
		return nil, fmt.Errorf("opening outbox %q: %w", opts.Path, err)
	}
	o.db = db
	go o.run()
	return o, nil
}

// openDB opens the bbolt file and returns the *os.File under it too: when
// bbolt panics on a corrupt file half-way through Open, the file lock would
// otherwise stay held until the process exits (the mapping bbolt made keeps
// the open file alive even once the descriptor is closed), and a later
// Open from the same process would find the file locked.
func openDB(opts Options) (db *bolt.DB, file *os.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				unlockFile(file)
				_ = file.Close()
			}
			db, file, err = nil, nil, fmt.Errorf("unreadable database: %v", r)
		}
	}()
	db, err = bolt.Open(opts.Path, 0o600, &bolt.Options{
		OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, mode)
			file = f
			return f, err
		},
		Timeout:      opts.LockTimeout,
		NoSync:       opts.NoSync,
		FreelistType: bolt.FreelistMapType,
		// NoFreelistSync stays false: with it bbolt rebuilds the freelist on
		// open by walking the file in a goroutine of its own, where a
		// corrupt page is a panic no caller can recover.
	})
	if err != nil {
		return nil, nil, err
	}
	return db, file, nil
}

// release closes a database whose load failed. bbolt's Close may block on
// a lock a panicking transaction left held, so it gets a moment, and the
// file is closed directly either way: that releases the file lock.
func release(db *bolt.DB, file *os.File) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = recover() }()
		_ = db.Close()
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	unlockFile(file)
	_ = file.Close()
}

// load restores the index and the next sequence number from db. bbolt
// panics on some corruptions; they become errors.
func (o *Outbox) load(db *bolt.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable database: %v", r)
		}
	}()
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketName)
		if err != nil {
			return fmt.Errorf("creating bucket: %w", err)
		}
		last := b.Sequence()
		topics := map[string]string{} // a few topics shared by many entries
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				return fmt.Errorf("reading entries: %d-byte key %x: not an outbox file", len(k), k)
			}
			seq := binary.BigEndian.Uint64(k)
			rec, err := decode(v, topics)
			if err != nil {
				return fmt.Errorf("reading entry %d: %w", seq, err)
			}
			o.idx.push(Entry{Seq: seq, Record: rec})
			last = max(last, seq)
		}
		if err := o.loadDead(tx); err != nil {
			return err
		}
		for seq := range o.dead.byseq {
			last = max(last, seq)
		}
		if last == math.MaxUint64 {
			return errors.New("sequence numbers exhausted")
		}
		o.nextSeq = last + 1
		return nil
	})
}

// encode appends the stored form of r to buf: a version byte, the topic
// length as a uvarint, the topic, the payload.
func encode(buf []byte, r Record) []byte {
	buf = append(buf, valueVersion)
	buf = binary.AppendUvarint(buf, uint64(len(r.Topic)))
	buf = append(buf, r.Topic...)
	return append(buf, r.Payload...)
}

// decode parses a stored value into a Record that owns its memory. Topics
// are interned in topics when it is not nil.
func decode(v []byte, topics map[string]string) (Record, error) {
	if len(v) == 0 || v[0] != valueVersion {
		if len(v) == 0 {
			return Record{}, errors.New("empty value")
		}
		return Record{}, fmt.Errorf("unknown value version %d", v[0])
	}
	n, w := binary.Uvarint(v[1:])
	if w <= 0 || n > uint64(len(v)-1-w) {
		return Record{}, errors.New("malformed topic length")
	}
	rest := v[1+w:]
	payload := make([]byte, len(rest)-int(n))
	copy(payload, rest[n:])
	topic, ok := topics[string(rest[:n])]
	if !ok {
		topic = string(rest[:n])
		if topics != nil {
			topics[topic] = topic
		}
	}
	return Record{Topic: topic, Payload: payload}, nil
}

// Append stores records durably (committed to disk unless Path == "") and
// returns their seqs in order; the records of one call are consecutive and
// stored atomically. Concurrent Appends are group-committed. Append copies
// the payloads, so the caller may reuse them. ctx bounds only the wait for
// space (Block, or DropOldest while the space is taken by Appends not yet
// committed); once queued for the commit, Append waits for the commit.
// Waiting Appends are not served first-come first-served: when space is
// freed, whichever fits first is stored.
func (o *Outbox) Append(ctx context.Context, recs ...Record) ([]uint64, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	var size int64
	for _, r := range recs {
		size += o.idx.size(r)
	}
	if size > o.opts.MaxBytes || (o.opts.MaxEntries > 0 && len(recs) > o.opts.MaxEntries) {
		return nil, fmt.Errorf("appending %d records of %d bytes (limits %d bytes, %d entries): %w",
			len(recs), size, o.opts.MaxBytes, o.opts.MaxEntries, ErrTooLarge)
	}
	recs = own(recs)

	var dropped []uint64
	o.mu.Lock()
	for !o.fits(size, len(recs)) {
		if o.closed {
			break
		}
		switch o.opts.Policy {
		case Reject:
			used, n := o.idx.bytes+o.resBytes, o.idx.count+o.resCount
			o.mu.Unlock()
			return nil, fmt.Errorf("appending %d records of %d bytes (holding %d entries, %d of %d bytes): %w",
				len(recs), size, n, used, o.opts.MaxBytes, ErrFull)
		case DropOldest:
			d := o.idx.dropOldest(func() bool { return o.fits(size, len(recs)) })
			if len(d) > 0 {
				o.stats.Dropped += uint64(len(d))
				if o.db != nil {
					o.removals = append(o.removals, d...)
				}
				dropped = append(dropped, d...)
				continue
			}
			// What is left is queued by other Appends: wait for their commit.
		}
		ch := o.changed
		o.waiters++
		o.mu.Unlock()
		o.dropped(dropped)
		dropped = nil
		select {
		case <-ch:
			o.mu.Lock()
			o.waiters--
		case <-ctx.Done():
			o.mu.Lock()
			o.waiters--
			o.mu.Unlock()
			return nil, fmt.Errorf("appending %d bytes: waiting for space: %w: %w", size, ErrFull, ctx.Err())
		}
	}
	if o.closed {
		o.mu.Unlock()
		o.dropped(dropped)
		return nil, ErrClosed
	}

	if o.db == nil {
		seqs := make([]uint64, len(recs))
		for i, r := range recs {
			seqs[i] = o.nextSeq
			o.idx.push(Entry{Seq: o.nextSeq, Record: r})
			o.nextSeq++
		}
		o.stats.Appends++
		o.stats.Records += uint64(len(recs))
		o.mu.Unlock()
		o.dropped(dropped)
		o.signal()
		return seqs, nil
	}

	req := &request{recs: recs, size: size, ready: make(chan struct{})}
	o.resBytes += size
	o.resCount += len(recs)
	o.queue = append(o.queue, req)
	o.mu.Unlock()
	o.wake()
	o.dropped(dropped)
	<-req.ready
	return req.seqs, req.err
}

// own copies the payloads of recs into one buffer owned by the outbox.
func own(recs []Record) []Record {
	n := 0
	for _, r := range recs {
		n += len(r.Payload)
	}
	buf := make([]byte, 0, n)
	out := make([]Record, len(recs))
	for i, r := range recs {
		start := len(buf)
		buf = append(buf, r.Payload...)
		out[i] = Record{Topic: r.Topic, Payload: buf[start:len(buf):len(buf)]}
	}
	return out
}

func (o *Outbox) fits(size int64, n int) bool {
	if o.idx.bytes+o.resBytes+size > o.opts.MaxBytes {
		return false
	}
	return o.opts.MaxEntries == 0 || o.idx.count+o.resCount+n <= o.opts.MaxEntries
}

func (o *Outbox) dropped(seqs []uint64) {
	if len(seqs) > 0 && o.opts.OnDrop != nil {
		o.opts.OnDrop(seqs)
	}
}

// broadcast wakes the Appends waiting for space. Called with o.mu held.
func (o *Outbox) broadcast() {
	if o.waiters > 0 {
		close(o.changed)
		o.changed = make(chan struct{})
	}
}

func (o *Outbox) signal() {
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

func (o *Outbox) wake() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// Next returns up to max entries with Seq > after, in order (does not
// remove them). The payloads are shared with the outbox: do not modify
// them.
func (o *Outbox) Next(after uint64, max int) []Entry {
	if after == math.MaxUint64 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.idx.next(after, max)
}

// Remove forgets entries (acknowledged), in any order; unknown seqs are
// ignored. Len, Bytes, Next and the space available to Append reflect it
// at once; the disk is updated lazily (see the package doc).
func (o *Outbox) Remove(seqs ...uint64) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	n := 0
	for _, s := range seqs {
		if o.idx.remove(s) {
			n++
			if o.db != nil {
				o.removals = append(o.removals, s)
			}
		}
	}
	if n == 0 {
		o.mu.Unlock()
		return
	}
	o.idx.tidy()
	o.stats.Removed += uint64(n)
	o.broadcast()
	kick := len(o.removals) >= removeKickAt
	o.mu.Unlock()
	if kick {
		o.wake()
	}
}

// Notify returns a channel that receives (non-blocking, capacity 1) after
// each Append.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// Len is the number of entries held.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.idx.count
}

// Bytes is the topic+payload bytes of the entries held.
func (o *Outbox) Bytes() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.idx.bytes
}

// Last is the seq of the newest entry held, 0 when empty.
func (o *Outbox) Last() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.idx.slots) - 1; i >= o.idx.head; i-- {
		if o.idx.slots[i].live {
			return o.idx.slots[i].Seq
		}
	}
	return 0
}

// Stats returns the counters.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats
}

// Flush writes pending removals to disk.
func (o *Outbox) Flush() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return ErrClosed
	}
	if o.db == nil {
		o.mu.Unlock()
		return nil
	}
	ch := make(chan error, 1)
	o.flushers = append(o.flushers, ch)
	o.mu.Unlock()
	o.wake()
	return <-ch
}

// Close flushes and closes. Appends waiting for space return ErrClosed;
// Appends already queued for a commit are committed first. Closing again
// does nothing.
func (o *Outbox) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	close(o.changed)
	o.changed = make(chan struct{})
	if o.db == nil {
		o.mu.Unlock()
		return nil
	}
	ch := make(chan error, 1)
	o.flushers = append(o.flushers, ch)
	o.mu.Unlock()
	o.wake()
	err := <-ch
	<-o.done
	if cerr := o.db.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing outbox %q: %w", o.opts.Path, cerr))
	}
	return err
}

// batch is what one transaction writes.
type batch struct {
	first    uint64 // seq of the first record
	reqs     []*request
	records  int
	removals []uint64
	flushers []chan error
}

// run is the committer: it writes queued Appends and pending removals,
// as many as are waiting, in one transaction at a time.
func (o *Outbox) run() {
	defer close(o.done)
	t := time.NewTicker(o.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-o.kick:
		case <-t.C:
		}
		if o.opts.beforeTake != nil {
			o.opts.beforeTake()
		}
		for {
			b, exit := o.take()
			if exit {
				return
			}
			if b == nil {
				break
			}
			o.finish(b, o.write(b))
		}
	}
}

// take collects the next batch; exit is true when closed and nothing is
// left to write.
func (o *Outbox) take() (b *batch, exit bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) == 0 && len(o.removals) == 0 && len(o.flushers) == 0 {
		return nil, o.closed
	}
	b = &batch{first: o.nextSeq}
	n := 0
	for n < len(o.queue) && (n == 0 || b.records+len(o.queue[n].recs) <= maxBatchRecords) {
		b.records += len(o.queue[n].recs)
		n++
	}
	b.reqs = o.queue[:n:n]
	o.queue = o.queue[n:]
	if len(o.queue) == 0 {
		o.queue = nil
	}
	b.removals, o.removals = o.removals, nil
	b.flushers, o.flushers = o.flushers, nil
	return b, false
}

func (o *Outbox) write(b *batch) (err error) {
	if b.records == 0 && len(b.removals) == 0 {
		return nil
	}
	keys := make([]byte, 8*b.records)
	var vals []byte
	{
		n := 0
		for _, r := range b.reqs {
			n += int(r.size) + len(r.recs)*(1+binary.MaxVarintLen64)
		}
		vals = make([]byte, 0, n)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("writing outbox %q: database corrupted: %v", o.opts.Path, r)
		}
	}()
	err = o.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketName)
		var k [8]byte
		for _, s := range b.removals {
			binary.BigEndian.PutUint64(k[:], s)
			if err := bk.Delete(k[:]); err != nil {
				return fmt.Errorf("deleting entry %d: %w", s, err)
			}
		}
		seq := b.first
		for _, r := range b.reqs {
			for _, rec := range r.recs {
				key := keys[:8:8]
				keys = keys[8:]
				binary.BigEndian.PutUint64(key, seq)
				start := len(vals)
				vals = encode(vals, rec)
				if err := bk.Put(key, vals[start:len(vals):len(vals)]); err != nil {
					return fmt.Errorf("storing entry %d: %w", seq, err)
				}
				seq++
			}
		}
		if seq > b.first {
			if err := bk.SetSequence(seq - 1); err != nil {
				return fmt.Errorf("storing sequence: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing outbox %q: %w", o.opts.Path, err)
	}
	return nil
}

// finish publishes the outcome of a batch.
func (o *Outbox) finish(b *batch, err error) {
	o.mu.Lock()
	if err == nil {
		seq := b.first
		for _, r := range b.reqs {
			r.seqs = make([]uint64, len(r.recs))
			for i, rec := range r.recs {
				o.idx.push(Entry{Seq: seq, Record: rec})
				r.seqs[i] = seq
				seq++
			}
		}
		o.nextSeq = seq
		if len(b.reqs) > 0 || len(b.removals) > 0 {
			o.stats.Commits++
		}
		o.stats.Appends += uint64(len(b.reqs))
		o.stats.Records += uint64(b.records)
		o.stats.MaxBatch = max(o.stats.MaxBatch, len(b.reqs))
	} else {
		o.removals = append(b.removals, o.removals...)
		for _, r := range b.reqs {
			r.err = err
		}
	}
	for _, r := range b.reqs {
		o.resBytes -= r.size
		o.resCount -= len(r.recs)
	}
	o.broadcast()
	o.mu.Unlock()
	for _, r := range b.reqs {
		close(r.ready)
	}
	for _, f := range b.flushers {
		f <- err
	}
	if err == nil && len(b.reqs) > 0 {
		o.signal()
	}
}
