package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// modes runs f against a file-backed outbox (fsync and NoSync) and an
// in-memory one.
func modes(t *testing.T, f func(t *testing.T, opts Options)) {
	t.Helper()
	t.Run("disk", func(t *testing.T) { f(t, Options{Path: filepath.Join(t.TempDir(), "outbox.db")}) })
	t.Run("nosync", func(t *testing.T) { f(t, Options{Path: filepath.Join(t.TempDir(), "outbox.db"), NoSync: true}) })
	t.Run("memory", func(t *testing.T) { f(t, Options{}) })
}

func open(t *testing.T, opts Options) *Outbox {
	t.Helper()
	o, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = o.Close() })
	return o
}

func rec(i int) Record {
	return Record{Topic: "v1/devices/me/telemetry", Payload: fmt.Appendf(nil, `{"i":%d}`, i)}
}

func appendOne(t *testing.T, o *Outbox, r Record) uint64 {
	t.Helper()
	seqs, err := o.Append(context.Background(), r)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if len(seqs) != 1 {
		t.Fatalf("Append returned %d seqs, want 1", len(seqs))
	}
	return seqs[0]
}

func seqsOf(es []Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// eventually polls cond; the test's own timeout bounds it.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		time.Sleep(time.Millisecond)
	}
}

func (o *Outbox) waiting() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.waiters
}

func (o *Outbox) queued() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queue)
}

func TestOrderAndSeqs(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		o := open(t, opts)
		ctx := context.Background()
		if got := o.Next(0, 10); got != nil {
			t.Fatalf("Next on empty outbox = %v", got)
		}
		var want []Record
		for i := range 5 {
			want = append(want, rec(i))
			if s := appendOne(t, o, rec(i)); s != uint64(i+1) {
				t.Fatalf("seq %d, want %d", s, i+1)
			}
		}
		batch := []Record{rec(5), rec(6), rec(7)}
		want = append(want, batch...)
		seqs, err := o.Append(ctx, batch...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seqs, []uint64{6, 7, 8}) {
			t.Fatalf("batch seqs %v, want [6 7 8]", seqs)
		}
		if seqs, err := o.Append(ctx); err != nil || seqs != nil {
			t.Fatalf("empty Append = %v, %v", seqs, err)
		}

		all := o.Next(0, 100)
		if len(all) != len(want) {
			t.Fatalf("Next returned %d entries, want %d", len(all), len(want))
		}
		var size int64
		for i, e := range all {
			if e.Seq != uint64(i+1) || e.Topic != want[i].Topic || !bytes.Equal(e.Payload, want[i].Payload) {
				t.Fatalf("entry %d = %d %q %q, want %d %q %q", i, e.Seq, e.Topic, e.Payload, i+1, want[i].Topic, want[i].Payload)
			}
			size += recSize(e.Record)
		}
		if o.Len() != 8 || o.Bytes() != size {
			t.Fatalf("Len, Bytes = %d, %d; want 8, %d", o.Len(), o.Bytes(), size)
		}
		if got := seqsOf(o.Next(3, 2)); !slices.Equal(got, []uint64{4, 5}) {
			t.Fatalf("Next(3, 2) = %v", got)
		}
		if got := o.Next(8, 10); got != nil {
			t.Fatalf("Next(8, 10) = %v", got)
		}
		if got := o.Next(0, 0); got != nil {
			t.Fatalf("Next(0, 0) = %v", got)
		}
	})
}

func TestAppendCopiesPayload(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		o := open(t, opts)
		buf := []byte("hello")
		appendOne(t, o, Record{Topic: "t", Payload: buf})
		copy(buf, "XXXXX")
		if got := o.Next(0, 1)[0].Payload; string(got) != "hello" {
			t.Fatalf("payload %q changed with the caller's buffer", got)
		}
	})
}

func TestRemoveOutOfOrder(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		o := open(t, opts)
		for i := range 10 {
			appendOne(t, o, rec(i))
		}
		before := o.Bytes()
		o.Remove(5, 2, 9)
		o.Remove(5, 42) // already removed, unknown: ignored
		if got := seqsOf(o.Next(0, 100)); !slices.Equal(got, []uint64{1, 3, 4, 6, 7, 8, 10}) {
			t.Fatalf("after Remove(5, 2, 9): %v", got)
		}
		if got := seqsOf(o.Next(1, 3)); !slices.Equal(got, []uint64{3, 4, 6}) {
			t.Fatalf("Next(1, 3) = %v", got)
		}
		if got := seqsOf(o.Next(4, 2)); !slices.Equal(got, []uint64{6, 7}) {
			t.Fatalf("Next(4, 2) = %v", got)
		}
		if o.Len() != 7 || o.Bytes() != before-3*recSize(rec(0)) {
			t.Fatalf("Len, Bytes = %d, %d", o.Len(), o.Bytes())
		}
		o.Remove(1, 3, 4, 10, 8, 7, 6)
		if o.Len() != 0 || o.Bytes() != 0 || o.Next(0, 10) != nil {
			t.Fatalf("not empty: Len %d Bytes %d Next %v", o.Len(), o.Bytes(), o.Next(0, 10))
		}
		if s := appendOne(t, o, rec(10)); s != 11 {
			t.Fatalf("seq after emptying = %d, want 11", s)
		}
		if err := o.Flush(); err != nil {
			t.Fatalf("Flush: %v", err)
		}
	})
}

// TestIndexAgainstModel drives the index with random appends and removes
// (enough to trigger trimming and compaction) and compares it with a map.
func TestIndexAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var x index
	model := map[uint64]Record{}
	next := uint64(1)
	for step := range 50000 {
		if r.IntN(100) < 55 {
			rc := rec(int(next))
			x.push(Entry{Seq: next, Record: rc})
			model[next] = rc
			next++
		} else if len(model) > 0 {
			// Mostly near the front (in-order acks), sometimes anywhere.
			var s uint64
			if r.IntN(4) == 0 {
				s = uint64(r.IntN(int(next))) + 1
			} else {
				s = x.slots[x.head].Seq + uint64(r.IntN(8))
			}
			_, held := model[s]
			if got := x.remove(s); got != held {
				t.Fatalf("step %d: remove(%d) = %v, want %v", step, s, got, held)
			}
			delete(model, s)
			x.tidy()
		}
		if x.count != len(model) {
			t.Fatalf("step %d: count %d, want %d", step, x.count, len(model))
		}
		if step%997 == 0 {
			after := uint64(r.IntN(int(next)))
			got := x.next(after, 50)
			var want []uint64
			for s := after + 1; s < next && len(want) < 50; s++ {
				if _, ok := model[s]; ok {
					want = append(want, s)
				}
			}
			if !slices.Equal(seqsOf(got), want) {
				t.Fatalf("step %d: next(%d) = %v, want %v", step, after, seqsOf(got), want)
			}
			for _, e := range got {
				if !bytes.Equal(e.Payload, model[e.Seq].Payload) {
					t.Fatalf("step %d: entry %d payload %q", step, e.Seq, e.Payload)
				}
			}
		}
	}
}

func TestReopen(t *testing.T) {
	for _, nosync := range []bool{false, true} {
		t.Run(fmt.Sprintf("nosync=%v", nosync), func(t *testing.T) {
			opts := Options{Path: filepath.Join(t.TempDir(), "outbox.db"), NoSync: nosync}
			o, err := Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 100 {
				appendOne(t, o, rec(i))
			}
			r := rand.New(rand.NewPCG(3, 4))
			removed := map[uint64]bool{}
			for _, i := range r.Perm(100)[:60] {
				removed[uint64(i+1)] = true
				o.Remove(uint64(i + 1))
			}
			want := o.Next(0, 1000)
			if err := o.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			o = open(t, opts)
			got := o.Next(0, 1000)
			if len(got) != 40 || len(got) != len(want) {
				t.Fatalf("reopened with %d entries, want 40", len(got))
			}
			for i, e := range got {
				if removed[e.Seq] || e.Seq != want[i].Seq || e.Topic != want[i].Topic || !bytes.Equal(e.Payload, want[i].Payload) {
					t.Fatalf("reopened entry %d = %d %q, want %d %q", i, e.Seq, e.Payload, want[i].Seq, want[i].Payload)
				}
			}
			var size int64
			for _, e := range want {
				size += recSize(e.Record)
			}
			if o.Len() != 40 || o.Bytes() != size {
				t.Fatalf("Len, Bytes = %d, %d", o.Len(), o.Bytes())
			}
			if s := appendOne(t, o, rec(100)); s != 101 {
				t.Fatalf("seq after reopen = %d, want 101", s)
			}

			// Emptied completely: the sequence still continues.
			o.Remove(seqsOf(o.Next(0, 1000))...)
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			o = open(t, opts)
			if o.Len() != 0 {
				t.Fatalf("Len after reopening emptied outbox = %d", o.Len())
			}
			if s := appendOne(t, o, rec(101)); s != 102 {
				t.Fatalf("seq after reopening emptied outbox = %d, want 102", s)
			}
		})
	}
}

func TestFullBlock(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		opts.MaxEntries = 2
		o := open(t, opts)
		ctx := context.Background()
		appendOne(t, o, rec(1))
		appendOne(t, o, rec(2))

		type result struct {
			seqs []uint64
			err  error
		}
		done := make(chan result, 1)
		go func() {
			seqs, err := o.Append(ctx, rec(3))
			done <- result{seqs, err}
		}()
		eventually(t, func() bool { return o.waiting() == 1 })
		select {
		case r := <-done:
			t.Fatalf("Append returned while full: %v %v", r.seqs, r.err)
		default:
		}
		o.Remove(2)
		r := <-done
		if r.err != nil || !slices.Equal(r.seqs, []uint64{3}) {
			t.Fatalf("unblocked Append = %v, %v", r.seqs, r.err)
		}
		if got := seqsOf(o.Next(0, 10)); !slices.Equal(got, []uint64{1, 3}) {
			t.Fatalf("entries %v", got)
		}
	})
}

func TestFullBlockBytes(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		r := Record{Topic: "t", Payload: make([]byte, 99)} // 100 bytes
		opts.MaxBytes = 250
		o := open(t, opts)
		appendOne(t, o, r)
		appendOne(t, o, r)
		done := make(chan error, 1)
		go func() {
			_, err := o.Append(context.Background(), r)
			done <- err
		}()
		eventually(t, func() bool { return o.waiting() == 1 })
		o.Remove(1)
		if err := <-done; err != nil {
			t.Fatalf("unblocked Append: %v", err)
		}
		if o.Bytes() != 200 {
			t.Fatalf("Bytes = %d, want 200", o.Bytes())
		}
	})
}

func TestFullBlockContext(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		opts.MaxEntries = 1
		o := open(t, opts)
		appendOne(t, o, rec(1))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := o.Append(ctx, rec(2))
			done <- err
		}()
		eventually(t, func() bool { return o.waiting() == 1 })
		cancel()
		err := <-done
		if !errors.Is(err, ErrFull) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Append after cancel = %v, want ErrFull and context.Canceled", err)
		}
		if o.waiting() != 0 || o.Len() != 1 {
			t.Fatalf("waiting %d, Len %d", o.waiting(), o.Len())
		}
		// The cancelled Append left nothing behind: space is still usable.
		o.Remove(1)
		if s := appendOne(t, o, rec(3)); s != 2 {
			t.Fatalf("seq %d, want 2", s)
		}
	})
}

func TestFullBlockClose(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		opts.MaxEntries = 1
		o := open(t, opts)
		appendOne(t, o, rec(1))
		done := make(chan error, 1)
		go func() {
			_, err := o.Append(context.Background(), rec(2))
			done <- err
		}()
		eventually(t, func() bool { return o.waiting() == 1 })
		if err := o.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked Append after Close = %v, want ErrClosed", err)
		}
	})
}

func TestFullReject(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		opts.MaxEntries = 2
		opts.Policy = Reject
		o := open(t, opts)
		appendOne(t, o, rec(1))
		appendOne(t, o, rec(2))
		if _, err := o.Append(context.Background(), rec(3)); !errors.Is(err, ErrFull) {
			t.Fatalf("Append when full = %v, want ErrFull", err)
		}
		if _, err := o.Append(context.Background()); err != nil {
			t.Fatalf("empty Append when full = %v", err)
		}
		o.Remove(1)
		if s := appendOne(t, o, rec(3)); s != 3 {
			t.Fatalf("seq %d, want 3", s)
		}
		if _, err := o.Append(context.Background(), rec(4)); !errors.Is(err, ErrFull) {
			t.Fatalf("Append when full again = %v, want ErrFull", err)
		}
	})
}

func TestFullDropOldest(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		opts.MaxEntries = 3
		opts.Policy = DropOldest
		var mu sync.Mutex
		var drops [][]uint64
		opts.OnDrop = func(seqs []uint64) {
			mu.Lock()
			defer mu.Unlock()
			drops = append(drops, slices.Clone(seqs))
		}
		o := open(t, opts)
		ctx := context.Background()
		for i := range 3 {
			appendOne(t, o, rec(i))
		}
		appendOne(t, o, rec(3))
		o.Remove(3) // out-of-order ack; the next eviction skips it
		if _, err := o.Append(ctx, rec(4), rec(5)); err != nil {
			t.Fatal(err)
		}
		if _, err := o.Append(ctx, rec(6), rec(7), rec(8), rec(9)); !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrFull) {
			t.Fatalf("Append of more records than MaxEntries = %v, want ErrTooLarge", err)
		}
		mu.Lock()
		got := fmt.Sprint(drops)
		mu.Unlock()
		if got != "[[1] [2]]" {
			t.Fatalf("OnDrop calls %s, want [[1] [2]]", got)
		}
		if got := seqsOf(o.Next(0, 10)); !slices.Equal(got, []uint64{4, 5, 6}) {
			t.Fatalf("entries %v, want [4 5 6]", got)
		}
		if st := o.Stats(); st.Dropped != 2 {
			t.Fatalf("Stats.Dropped = %d", st.Dropped)
		}
		if opts.Path == "" {
			return
		}
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
		o = open(t, opts)
		if got := seqsOf(o.Next(0, 10)); !slices.Equal(got, []uint64{4, 5, 6}) {
			t.Fatalf("entries after reopen %v, want [4 5 6]", got)
		}
	})
}

func TestTooLarge(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		opts.MaxBytes = 100
		dir := t.TempDir()
		for _, p := range []FullPolicy{Block, Reject, DropOldest} {
			opts.Policy = p
			if opts.Path != "" {
				opts.Path = filepath.Join(dir, p.String()+".db")
			}
			o := open(t, opts)
			_, err := o.Append(context.Background(), Record{Topic: "t", Payload: make([]byte, 100)})
			if !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrFull) {
				t.Fatalf("%v: Append of 101 bytes = %v, want ErrTooLarge", p, err)
			}
			if _, err := o.Append(context.Background(), Record{Topic: "t", Payload: make([]byte, 99)}); err != nil {
				t.Fatalf("%v: Append of exactly MaxBytes: %v", p, err)
			}
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestConcurrent(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		const writers, each = 8, 100
		opts.MaxEntries = 64 // small enough that writers block on the consumer
		o := open(t, opts)
		var wg sync.WaitGroup
		got := make([][]uint64, writers)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					n := 1 + i%3
					recs := make([]Record, n)
					for j := range recs {
						recs[j] = Record{Topic: fmt.Sprint("w", w), Payload: fmt.Appendf(nil, "%d", i)}
					}
					seqs, err := o.Append(context.Background(), recs...)
					if err != nil {
						t.Errorf("writer %d: %v", w, err)
						return
					}
					for j := 1; j < len(seqs); j++ {
						if seqs[j] != seqs[j-1]+1 {
							t.Errorf("writer %d: seqs of one Append not consecutive: %v", w, seqs)
						}
					}
					got[w] = append(got[w], seqs...)
				}
			})
		}
		// Consumer: the sender's pattern, acks in shuffled order.
		total := 0
		for i := range each {
			total += writers * (1 + i%3)
		}
		consumed := map[uint64]string{}
		var last uint64
		r := rand.New(rand.NewPCG(5, 6))
		for len(consumed) < total {
			es := o.Next(last, 16)
			if len(es) == 0 {
				<-o.Notify()
				continue
			}
			for _, e := range es {
				if e.Seq <= last {
					t.Fatalf("Next after %d returned %d", last, e.Seq)
				}
				last = e.Seq
				consumed[e.Seq] = e.Topic + "/" + string(e.Payload)
			}
			ss := seqsOf(es)
			r.Shuffle(len(ss), func(i, j int) { ss[i], ss[j] = ss[j], ss[i] })
			o.Remove(ss...)
		}
		wg.Wait()
		seen := map[uint64]bool{}
		for w, seqs := range got {
			if len(seqs) == 0 {
				continue
			}
			for i, s := range seqs {
				if seen[s] {
					t.Fatalf("seq %d returned twice", s)
				}
				seen[s] = true
				if i > 0 && s <= seqs[i-1] {
					t.Fatalf("writer %d: seqs not increasing: %d after %d", w, s, seqs[i-1])
				}
				if !strings.HasPrefix(consumed[s], fmt.Sprint("w", w, "/")) {
					t.Fatalf("seq %d consumed as %q, appended by writer %d", s, consumed[s], w)
				}
			}
		}
		if len(seen) != total || o.Len() != 0 {
			t.Fatalf("%d seqs returned, %d consumed, Len %d; want %d, %d, 0", len(seen), len(consumed), o.Len(), total, total)
		}
		st := o.Stats()
		if st.Appends != writers*each || st.Records != uint64(total) {
			t.Fatalf("Stats %+v", st)
		}
		if opts.Path != "" {
			t.Logf("%d Appends in %d commits (largest group %d)", st.Appends, st.Commits, st.MaxBatch)
		}
	})
}

// TestGroupCommit proves that Appends waiting together share one
// transaction: the committer is held while they queue up.
func TestGroupCommit(t *testing.T) {
	const n = 20
	hold := make(chan struct{})
	var once sync.Once
	held := make(chan struct{})
	opts := Options{Path: filepath.Join(t.TempDir(), "outbox.db")}
	opts.beforeTake = func() {
		once.Do(func() {
			close(held)
			<-hold
		})
	}
	o := open(t, opts)
	var wg sync.WaitGroup
	res := make([][]uint64, n)
	start := func(i int) {
		wg.Go(func() {
			seqs, err := o.Append(context.Background(), rec(i), rec(i))
			if err != nil {
				t.Error(err)
			}
			res[i] = seqs
		})
	}
	start(0)
	<-held // the committer was woken by the first Append and is held
	for i := 1; i < n; i++ {
		start(i)
	}
	eventually(t, func() bool { return o.queued() == n })
	before := o.Stats()
	close(hold)
	wg.Wait()
	st := o.Stats()
	if st.Commits-before.Commits != 1 || st.MaxBatch != n || st.Appends != n || st.Records != 2*n {
		t.Fatalf("%d queued Appends: Stats before %+v after %+v; want one commit of %d", n, before, st, n)
	}
	var all []uint64
	for _, s := range res {
		all = append(all, s...)
	}
	slices.Sort(all)
	if !slices.Equal(all, span(1, 2*n)) {
		t.Fatalf("seqs %v", all)
	}
}

func TestLazyRemoval(t *testing.T) {
	commits := func(o *Outbox) uint64 { return o.Stats().Commits }
	t.Run("interval", func(t *testing.T) {
		o := open(t, Options{Path: filepath.Join(t.TempDir(), "outbox.db"), FlushInterval: 5 * time.Millisecond})
		appendOne(t, o, rec(1))
		before := commits(o)
		o.Remove(1)
		eventually(t, func() bool { return commits(o) > before })
	})
	t.Run("many pending", func(t *testing.T) {
		o := open(t, Options{Path: filepath.Join(t.TempDir(), "outbox.db"), FlushInterval: time.Hour})
		recs := make([]Record, removeKickAt)
		for i := range recs {
			recs[i] = rec(i)
		}
		seqs, err := o.Append(context.Background(), recs...)
		if err != nil {
			t.Fatal(err)
		}
		before := commits(o)
		o.Remove(seqs[:removeKickAt-1]...)
		if got := commits(o); got != before {
			t.Fatalf("%d removals committed at once", removeKickAt-1)
		}
		o.Remove(seqs[removeKickAt-1])
		eventually(t, func() bool { return commits(o) > before })
	})
	t.Run("last", func(t *testing.T) {
		o := open(t, Options{})
		if o.Last() != 0 {
			t.Fatalf("Last of empty outbox = %d", o.Last())
		}
		appendOne(t, o, rec(1))
		appendOne(t, o, rec(2))
		o.Remove(2)
		if o.Last() != 1 {
			t.Fatalf("Last = %d, want 1", o.Last())
		}
	})
}

func TestNotify(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		o := open(t, opts)
		select {
		case <-o.Notify():
			t.Fatal("notified before any Append")
		default:
		}
		appendOne(t, o, rec(1))
		appendOne(t, o, rec(2))
		<-o.Notify() // capacity 1: two Appends, one wake-up pending
		select {
		case <-o.Notify():
			t.Fatal("second notification pending")
		default:
		}
	})
}

func TestClosed(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		o, err := Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		appendOne(t, o, rec(1))
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
		if err := o.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := o.Append(context.Background(), rec(2)); !errors.Is(err, ErrClosed) {
			t.Fatalf("Append after Close = %v", err)
		}
		if err := o.Flush(); !errors.Is(err, ErrClosed) {
			t.Fatalf("Flush after Close = %v", err)
		}
		o.Remove(1) // no-op, no panic
	})
}

func TestOpenInvalidOptions(t *testing.T) {
	for _, opts := range []Options{{MaxBytes: -1}, {MaxEntries: -1}, {Policy: 7}} {
		if _, err := Open(opts); err == nil {
			t.Errorf("Open(%+v) succeeded", opts)
		}
	}
}

func TestLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	open(t, Options{Path: path})
	_, err := Open(Options{Path: path, LockTimeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second Open = %v, want a lock error naming %s", err, path)
	}
}

func TestCorruptFile(t *testing.T) {
	valid := func(t *testing.T, path string) {
		o, err := Open(Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			appendOne(t, o, Record{Topic: "t", Payload: bytes.Repeat([]byte{byte(i)}, 100)})
		}
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
	}
	withBolt := func(t *testing.T, path string, f func(b *bolt.Bucket) error) {
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucketName)
			if err != nil {
				return err
			}
			return f(b)
		}); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name    string
		prepare func(t *testing.T, path string)
	}{
		{"garbage", func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated", func(t *testing.T, path string) {
			valid(t, path)
			if err := os.Truncate(path, 5000); err != nil {
				t.Fatal(err)
			}
		}},
		{"meta pages overwritten", func(t *testing.T, path string) {
			valid(t, path)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			junk := bytes.Repeat([]byte{0xa5}, 8192)
			if _, err := f.WriteAt(junk, 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"data pages overwritten", func(t *testing.T, path string) {
			valid(t, path)
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			junk := bytes.Repeat([]byte{0x5a}, int(st.Size())-8192)
			if _, err := f.WriteAt(junk, 8192); err != nil {
				t.Fatal(err)
			}
		}},
		{"leaf page overwritten", func(t *testing.T, path string) {
			valid(t, path)
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			leaf, size := -1, db.Info().PageSize
			if err := db.View(func(tx *bolt.Tx) error {
				for id := 2; ; id++ {
					p, err := tx.Page(id)
					if err != nil || p == nil {
						return err
					}
					if p.Type == "leaf" {
						leaf = id
					}
				}
			}); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if leaf < 0 {
				t.Fatal("no leaf page found")
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(bytes.Repeat([]byte{0x5a}, size), int64(leaf*size)); err != nil {
				t.Fatal(err)
			}
		}},
		{"foreign key", func(t *testing.T, path string) {
			withBolt(t, path, func(b *bolt.Bucket) error { return b.Put([]byte("hello"), []byte("world")) })
		}},
		{"bad value", func(t *testing.T, path string) {
			withBolt(t, path, func(b *bolt.Bucket) error {
				return b.Put([]byte{0, 0, 0, 0, 0, 0, 0, 1}, []byte{valueVersion, 200, 1, 'x'})
			})
		}},
		{"unknown version", func(t *testing.T, path string) {
			withBolt(t, path, func(b *bolt.Bucket) error {
				return b.Put([]byte{0, 0, 0, 0, 0, 0, 0, 1}, []byte{9, 1, 't'})
			})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "outbox.db")
			c.prepare(t, path)
			o, err := Open(Options{Path: path})
			if err == nil {
				_ = o.Close()
				t.Fatal("Open of a corrupt file succeeded")
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the path", err)
			}
			t.Logf("%v", err)
			// The failed Open let go of the file: once it is emptied in
			// place (same inode), this process opens it again at once.
			f, err := os.OpenFile(path, os.O_RDWR|os.O_TRUNC, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			o, err = Open(Options{Path: path, LockTimeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatalf("re-opening after the failed Open: %v", err)
			}
			appendOne(t, o, rec(1))
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCodec(t *testing.T) {
	for _, r := range []Record{{}, {Topic: "t"}, {Payload: []byte{0}}, {Topic: strings.Repeat("x", 300), Payload: []byte("{}")}} {
		got, err := decode(encode(nil, r), nil)
		if err != nil || got.Topic != r.Topic || !bytes.Equal(got.Payload, r.Payload) {
			t.Fatalf("round trip of %+v = %+v, %v", r, got, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(nil, rec(1)))
	f.Add([]byte{valueVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := decode(v, map[string]string{})
		if err != nil {
			return
		}
		again, err := decode(encode(nil, r), nil)
		if err != nil || again.Topic != r.Topic || !bytes.Equal(again.Payload, r.Payload) {
			t.Fatalf("round trip of %+v = %+v, %v", r, again, err)
		}
	})
}
