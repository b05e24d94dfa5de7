// Package outbox is the durable queue behind tb's QoS 1 publishes.
//
// A publish is appended to the outbox before it is reported as accepted,
// published by the sender (which reads entries in order with Next), and
// removed only when the server's PUBACK arrives. Whatever has not been
// removed is replayed in order after a reconnect and after a restart.
//
// # Durability
//
// With Options.Path set the outbox is a bbolt file. Append returns only
// after the transaction holding its records has been committed, and by
// default that commit is fsynced: a record whose Append returned without
// error survives a process crash (kill -9 included) and a power loss. With
// Options.NoSync the commit is written but not fsynced: records survive a
// process crash (the data is in the kernel's page cache) but the last
// commits can be lost when the machine loses power or the kernel crashes.
// With Path == "" the outbox lives in memory only: same semantics, no
// durability.
//
// Concurrent Appends are group-committed: one background goroutine takes
// every Append waiting at that moment and writes them in one transaction,
// so N concurrent callers share one fsync instead of paying one each.
//
// Remove takes effect in memory at once (Len, Bytes, Next and the space
// available to Append) and is written to disk lazily: with the next
// commit, when many removals are pending, after Options.FlushInterval, and
// on Flush and Close. A removal lost in a crash only means the entry is
// sent again after the restart (a duplicate), never that one is lost.
// Sequence numbers strictly increase, are never reused within one file,
// and continue across restarts.
//
// # When the outbox is full
//
// The outbox is bounded by the bytes of topic+payload it holds
// (Options.MaxBytes, default 32 MiB, with Options.EntryOverhead charged per entry) and optionally by the number of
// entries (Options.MaxEntries). An Append that does not fit follows
// Options.Policy:
//
//   - Block (the default) waits until Remove (or an eviction) frees enough
//     space, or until its context ends; then it returns an error that
//     matches both ErrFull and the context's error.
//   - Reject returns ErrFull at once.
//   - DropOldest evicts the oldest stored entries until the new records
//     fit, and tells Options.OnDrop their sequence numbers. New data is
//     kept, old data is lost.
//
// A single Append that could never fit (more bytes than MaxBytes, or more
// records than MaxEntries) fails with ErrTooLarge whatever the policy.
package outbox
