package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tbflow/tbflow/tb"
)

func init() {
	register("outbox", "show and re-drive the dead letters of an outbox file", runOutbox)
}

// runOutbox is `tbflow outbox list|retry|drop FILE [SEQ...]`.
func runOutbox(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("outbox", stderr)
	asJSON := fs.Bool("json", false, "list: print the dead letters as JSON lines")
	setUsage(fs, stderr,
		"usage: tbflow outbox [flags] list|retry|drop FILE [SEQ...]",
		"",
		"An outbox file (a tb-connection's outboxPath) keeps, beside the messages",
		"waiting to be sent, the dead letters: messages ThingsBoard will never take",
		"(payload or topic refused, or a connection closed on the message three",
		"times). The flow using the file must be stopped.",
		"",
		"  list   the number of queued messages and every dead letter with its reason",
		"  retry  put the dead letters (all, or the SEQs given) back at the end of the",
		"         queue, for example after the device profile was fixed",
		"  drop   forget the dead letters (all, or the SEQs given)",
	)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() < 2 {
		fs.Usage()
		return 2
	}
	cmd, path := fs.Arg(0), fs.Arg(1)
	var seqs []uint64
	for _, a := range fs.Args()[2:] {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "tbflow outbox: %q is not a message number\n", a)
			return 2
		}
		seqs = append(seqs, n)
	}
	if cmd != "list" && cmd != "retry" && cmd != "drop" {
		fmt.Fprintf(stderr, "tbflow outbox: unknown action %q (want list, retry or drop)\n", cmd)
		return 2
	}
	f, err := tb.OpenOutboxFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "tbflow outbox: %v\n", err)
		return 1
	}
	defer func() {
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "tbflow outbox: %v\n", err)
		}
	}()
	switch cmd {
	case "list":
		dead := f.DeadLetters()
		if *asJSON {
			enc := json.NewEncoder(stdout)
			for _, d := range dead {
				_ = enc.Encode(map[string]any{"seq": d.Seq, "topic": d.Topic, "reason": d.Reason,
					"at": d.At.UTC().Format(time.RFC3339), "payload": printable(d.Payload, 1<<20)})
			}
			return 0
		}
		fmt.Fprintf(stdout, "%s: %d queued, %d dead-lettered\n", path, f.Queued(), len(dead))
		for _, d := range dead {
			fmt.Fprintf(stdout, "%d  %s  %s\n    reason: %s\n    payload: %s\n",
				d.Seq, d.At.UTC().Format(time.RFC3339), d.Topic, d.Reason, printable(d.Payload, 200))
		}
	case "retry":
		n, err := f.Retry(seqs...)
		if err != nil {
			fmt.Fprintf(stderr, "tbflow outbox: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%d dead letters queued again\n", n)
	case "drop":
		n, err := f.Drop(seqs...)
		if err != nil {
			fmt.Fprintf(stderr, "tbflow outbox: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%d dead letters dropped\n", n)
	}
	return 0
}

// printable shows a payload as text, bounded, with invalid UTF-8 and
// control characters escaped.
func printable(b []byte, limit int) string {
	cut := len(b) > limit
	if cut {
		b = b[:limit]
	}
	var out []byte
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && size == 1:
			out = fmt.Appendf(out, `\x%02x`, b[0])
		case r < 0x20 || r == 0x7f:
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	if cut {
		out = append(out, "…"...)
	}
	return string(out)
}
