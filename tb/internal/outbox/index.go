package outbox

import "sort"

// index is the in-memory copy of what the outbox holds, ordered by seq.
// Removals leave tombstones that are trimmed from the front at once and
// compacted away when they outnumber the live entries. Not safe for
// concurrent use: the Outbox lock guards it.
type index struct {
	slots []slot // slots[head:] ordered by seq; slots[head] is live unless empty
	head  int
	dead  int   // tombstones in slots[head:]
	count int   // live entries
	bytes int64 // bytes charged for the live entries (see size)

	overhead int64 // Options.EntryOverhead
}

type slot struct {
	Entry
	live bool
}

func recSize(r Record) int64 { return int64(len(r.Topic) + len(r.Payload)) }

// size is what an entry is charged: its topic and payload bytes plus the
// per-entry overhead.
func (x *index) size(r Record) int64 { return recSize(r) + x.overhead }

// push adds an entry whose seq is greater than every seq held.
func (x *index) push(e Entry) {
	x.slots = append(x.slots, slot{Entry: e, live: true})
	x.count++
	x.bytes += x.size(e.Record)
}

// find returns the position of the first slot with Seq >= seq.
func (x *index) find(seq uint64) int {
	s := x.slots[x.head:]
	return x.head + sort.Search(len(s), func(i int) bool { return s[i].Seq >= seq })
}

// remove forgets seq and reports whether it was held.
func (x *index) remove(seq uint64) bool {
	i := x.find(seq)
	if i == len(x.slots) || x.slots[i].Seq != seq || !x.slots[i].live {
		return false
	}
	x.kill(i)
	return true
}

func (x *index) kill(i int) {
	s := &x.slots[i]
	x.bytes -= x.size(s.Record)
	x.count--
	s.live = false
	s.Record = Record{}
	x.dead++
}

// tidy trims tombstones from the front and compacts when they dominate.
func (x *index) tidy() {
	for x.head < len(x.slots) && !x.slots[x.head].live {
		x.slots[x.head] = slot{}
		x.head++
		x.dead--
	}
	if x.head == len(x.slots) {
		x.slots, x.head, x.dead = x.slots[:0], 0, 0
		return
	}
	if x.dead > 1024 && x.dead > x.count {
		live := make([]slot, 0, x.count+x.count/2)
		for _, s := range x.slots[x.head:] {
			if s.live {
				live = append(live, s)
			}
		}
		x.slots, x.head, x.dead = live, 0, 0
		return
	}
	if x.head > 1024 && x.head > len(x.slots)/2 {
		n := copy(x.slots, x.slots[x.head:])
		clear(x.slots[n:])
		x.slots, x.head = x.slots[:n], 0
	}
}

// next returns up to max live entries with Seq > after, in order.
func (x *index) next(after uint64, max int) []Entry {
	if max <= 0 || x.count == 0 {
		return nil
	}
	var out []Entry
	for i := x.find(after + 1); i < len(x.slots) && len(out) < max; i++ {
		if s := x.slots[i]; s.live {
			if out == nil {
				out = make([]Entry, 0, min(max, x.count))
			}
			out = append(out, s.Entry)
		}
	}
	return out
}

// dropOldest removes live entries from the front until pred says enough,
// returning their seqs.
func (x *index) dropOldest(enough func() bool) []uint64 {
	var seqs []uint64
	for i := x.head; i < len(x.slots) && !enough(); i++ {
		if x.slots[i].live {
			seqs = append(seqs, x.slots[i].Seq)
			x.kill(i)
		}
	}
	x.tidy()
	return seqs
}
