package outbox

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// BenchmarkFsync measures what one durable write costs on the disk holding
// the temporary directory: a 4 KiB write plus fsync, and plus fdatasync
// (what bbolt calls on Linux, twice per commit: data pages, then meta).
func BenchmarkFsync(b *testing.B) {
	for _, bc := range []struct {
		name string
		sync func(f *os.File) error
	}{
		{"fsync", (*os.File).Sync},
		{"fdatasync", func(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "sync"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			page := make([]byte, 4096)
			for i := 0; b.Loop(); i++ {
				if _, err := f.WriteAt(page, int64(i%256)*4096); err != nil {
					b.Fatal(err)
				}
				if err := bc.sync(f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var benchModes = []struct {
	name string
	opts func(b *testing.B) Options
}{
	{"fsync", func(b *testing.B) Options { return Options{Path: filepath.Join(b.TempDir(), "outbox.db")} }},
	{"nosync", func(b *testing.B) Options {
		return Options{Path: filepath.Join(b.TempDir(), "outbox.db"), NoSync: true}
	}},
	{"memory", func(b *testing.B) Options { return Options{} }},
}

// benchRecord is a typical telemetry publish: 64 bytes of JSON.
var benchRecord = Record{
	Topic:   "v1/devices/me/telemetry",
	Payload: []byte(`{"ts":1735689600000,"values":{"temperature":21.5,"humidity":40}}`),
}

func report(b *testing.B, o *Outbox, records int64) {
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "msgs/s")
	if st := o.Stats(); st.Commits > 0 {
		b.ReportMetric(float64(st.Records)/float64(st.Commits), "msgs/commit")
	}
}

// BenchmarkAppend measures Append alone (the outbox is large enough never
// to fill): one record per call from one goroutine (seq), 100 records per
// call (batch100), and one record per call from 32 goroutines (parallel,
// where group commit shares each fsync).
func BenchmarkAppend(b *testing.B) {
	for _, m := range benchModes {
		for _, shape := range []string{"seq", "batch100", "parallel"} {
			b.Run(m.name+"/"+shape, func(b *testing.B) {
				opts := m.opts(b)
				opts.MaxBytes = 1 << 40
				o, err := Open(opts)
				if err != nil {
					b.Fatal(err)
				}
				defer o.Close()
				ctx := context.Background()
				var records int64
				switch shape {
				case "seq":
					for b.Loop() {
						if _, err := o.Append(ctx, benchRecord); err != nil {
							b.Fatal(err)
						}
					}
					records = int64(b.N)
				case "batch100":
					recs := make([]Record, 100)
					for i := range recs {
						recs[i] = benchRecord
					}
					for b.Loop() {
						if _, err := o.Append(ctx, recs...); err != nil {
							b.Fatal(err)
						}
					}
					records = 100 * int64(b.N)
				case "parallel":
					b.SetParallelism(16)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := o.Append(ctx, benchRecord); err != nil {
								b.Error(err)
								return
							}
						}
					})
					records = int64(b.N)
				}
				report(b, o, records)
			})
		}
	}
}

// BenchmarkAppendRemove is the steady state: appenders (one, or 32 in
// parallel) and a sender that reads with Next, 256 at a time, and removes
// what it read. It ends when everything appended has been removed.
func BenchmarkAppendRemove(b *testing.B) {
	for _, m := range benchModes {
		for _, shape := range []string{"seq", "parallel"} {
			b.Run(m.name+"/"+shape, func(b *testing.B) {
				o, err := Open(m.opts(b))
				if err != nil {
					b.Fatal(err)
				}
				defer o.Close()
				ctx := context.Background()
				var appended atomic.Int64
				stop := make(chan struct{})
				var wg sync.WaitGroup
				removed := int64(0)
				wg.Go(func() {
					var last uint64
					for {
						es := o.Next(last, 256)
						if len(es) == 0 {
							select {
							case <-o.Notify():
								continue
							case <-stop:
								if o.Len() == 0 {
									return
								}
								continue
							}
						}
						seqs := make([]uint64, len(es))
						for i, e := range es {
							seqs[i] = e.Seq
						}
						last = seqs[len(seqs)-1]
						o.Remove(seqs...)
						removed += int64(len(seqs))
					}
				})
				b.ResetTimer()
				if shape == "seq" {
					for range b.N {
						if _, err := o.Append(ctx, benchRecord); err != nil {
							b.Fatal(err)
						}
					}
					appended.Add(int64(b.N))
				} else {
					b.SetParallelism(16)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := o.Append(ctx, benchRecord); err != nil {
								b.Error(err)
								return
							}
							appended.Add(1)
						}
					})
				}
				close(stop)
				wg.Wait()
				b.StopTimer()
				if removed != appended.Load() {
					b.Fatalf("removed %d of %d", removed, appended.Load())
				}
				report(b, o, removed)
			})
		}
	}
}
