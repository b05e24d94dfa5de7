package outbox

import (
	"bytes"
	"path/filepath"
	"testing"
)

func TestDeadLetters(t *testing.T) {
	for _, mode := range []string{"memory", "disk"} {
		t.Run(mode, func(t *testing.T) {
			path := ""
			if mode == "disk" {
				path = filepath.Join(t.TempDir(), "outbox.db")
			}
			o, err := Open(Options{Path: path, MaxDead: 2})
			if err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			for i := range 4 {
				seqs = append(seqs, appendOne(t, o, rec(i)))
			}
			if ok, err := o.DeadLetter(seqs[0], "payload invalid"); !ok || err != nil {
				t.Fatalf("DeadLetter = %v, %v", ok, err)
			}
			if ok, _ := o.DeadLetter(seqs[0], "again"); ok {
				t.Fatal("dead-lettered an entry no longer held")
			}
			if n := o.Len(); n != 3 {
				t.Fatalf("Len = %d after dead-lettering, want 3", n)
			}
			if next := o.Next(0, 10); len(next) != 3 || next[0].Seq != seqs[1] {
				t.Fatalf("Next = %+v, want the entries behind the dead letter", next)
			}
			// The store is bounded: a third dead letter forgets the oldest.
			o.DeadLetter(seqs[1], "r1")
			o.DeadLetter(seqs[2], "r2")
			dead := o.DeadLetters()
			if len(dead) != 2 || dead[0].Seq != seqs[1] || dead[1].Seq != seqs[2] || dead[1].Reason != "r2" ||
				!bytes.Equal(dead[1].Payload, rec(2).Payload) {
				t.Fatalf("DeadLetters = %+v", dead)
			}
			if mode == "disk" {
				if err := o.Close(); err != nil {
					t.Fatal(err)
				}
				if o, err = Open(Options{Path: path, MaxDead: 2}); err != nil {
					t.Fatal(err)
				}
				if d := o.DeadLetters(); len(d) != 2 || d[0].Reason != "r1" {
					t.Fatalf("after reopen DeadLetters = %+v", d)
				}
				if o.Len() != 1 {
					t.Fatalf("after reopen Len = %d, want 1", o.Len())
				}
			}
			n, err := o.RetryDead(seqs[1])
			if n != 1 || err != nil {
				t.Fatalf("RetryDead = %d, %v", n, err)
			}
			next := o.Next(0, 10)
			if len(next) != 2 || next[1].Seq <= seqs[3] || !bytes.Equal(next[1].Payload, rec(1).Payload) {
				t.Fatalf("after retry Next = %+v, want the retried message at the end with a new seq", next)
			}
			if n, err := o.DropDead(); n != 1 || err != nil || o.DeadCount() != 0 {
				t.Fatalf("DropDead = %d, %v; %d left", n, err, o.DeadCount())
			}
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
