package outbox

import (
	"context"
	"errors"
	"testing"
)

// EntryOverhead is charged per entry against MaxBytes, on Append and
// Remove alike.
func TestEntryOverheadCharged(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		opts.MaxBytes, opts.EntryOverhead, opts.Policy = 1000, 100, Reject
		o := open(t, opts)
		r := Record{Topic: "t", Payload: make([]byte, 99)} // 100 bytes + 100 charged
		for i := range 5 {
			if _, err := o.Append(context.Background(), r); err != nil {
				t.Fatalf("append %d: %v", i, err)
			}
		}
		if o.Bytes() != 1000 {
			t.Fatalf("Bytes = %d, want 1000", o.Bytes())
		}
		if _, err := o.Append(context.Background(), Record{Topic: "t"}); !errors.Is(err, ErrFull) {
			t.Fatalf("an empty record into a full outbox: %v, want ErrFull (its entry is charged)", err)
		}
		o.Remove(1)
		if o.Bytes() != 800 {
			t.Fatalf("after Remove: Bytes = %d, want 800", o.Bytes())
		}
		if _, err := o.Append(context.Background(), Record{Topic: "t", Payload: make([]byte, 100)}); !errors.Is(err, ErrFull) {
			t.Fatalf("201 charged bytes into 200 free: %v, want ErrFull", err)
		}
		if _, err := o.Append(context.Background(), r); err != nil {
			t.Fatalf("200 charged bytes into 200 free: %v", err)
		}
	})
}
