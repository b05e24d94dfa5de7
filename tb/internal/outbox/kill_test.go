package outbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

const helperEnv = "OUTBOX_TEST_HELPER_PATH"

// TestHelperProcess is the child of TestKill9. It appends forever from
// several goroutines and prints each seq after its Append returned:
//
//	R <seq>            phase 1: appended, then removed and flushed
//	F                  phase 1 done: the removals above are on disk
//	A <seq> <payload>  phase 2: appended (and not removed)
//	X <seq>            phase 2: appended, then removed (not flushed)
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process of TestKill9")
	}
	o, err := Open(Options{Path: path, NoSync: os.Getenv("OUTBOX_TEST_HELPER_NOSYNC") == "1"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		// One write per line: a line is in the pipe whole or not at all.
		if _, err := os.Stdout.Write(fmt.Appendf(nil, format+"\n", args...)); err != nil {
			os.Exit(3)
		}
	}
	ctx := context.Background()
	for i := range 50 {
		seqs, err := o.Append(ctx, rec(i))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		o.Remove(seqs...)
		say("R %d", seqs[0])
	}
	if err := o.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	say("F")
	for g := range 4 {
		go func() {
			for i := 0; ; i++ {
				n := 1 + i%2
				recs := make([]Record, n)
				for j := range recs {
					recs[j] = Record{Topic: "t", Payload: fmt.Appendf(nil, "g%d-%d-%d", g, i, j)}
				}
				seqs, err := o.Append(ctx, recs...)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				for j, s := range seqs {
					if s%3 == 0 {
						o.Remove(s)
						say("X %d", s)
					} else {
						say("A %d %s", s, recs[j].Payload)
					}
				}
			}
		}()
	}
	select {} // until killed
}

// TestKill9 kills a child process with SIGKILL while it appends, then
// checks that every record whose Append had returned is in the file.
func TestKill9(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("in the helper process")
	}
	for _, nosync := range []bool{false, true} {
		t.Run(fmt.Sprintf("nosync=%v", nosync), func(t *testing.T) { kill9(t, nosync) })
	}
}

func kill9(t *testing.T, nosync bool) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	if nosync {
		cmd.Env = append(cmd.Env, "OUTBOX_TEST_HELPER_NOSYNC=1")
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	killed := false
	kill := func() {
		if !killed {
			killed = true
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Errorf("kill %d: %v", pid, err)
			}
		}
	}
	defer func() {
		kill()
		_ = cmd.Wait()
	}()

	const killAfter = 2000 // phase 2 lines
	accepted := map[uint64]string{}
	removed := map[uint64]bool{}
	flushed := map[uint64]bool{}
	phase2 := 0
	var maxSeq uint64 // highest seq the child was given
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "F":
			for s := range removed {
				flushed[s] = true
			}
			continue
		case "R", "A", "X":
		default:
			continue // test framework output
		}
		seq, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("child line %q: %v", sc.Text(), err)
		}
		maxSeq = max(maxSeq, seq)
		switch f[0] {
		case "R":
			removed[seq] = true
		case "A":
			accepted[seq] = f[2]
			phase2++
		case "X":
			phase2++
		}
		if phase2 == killAfter {
			kill() // mid-stream: the child is still appending
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL; stderr:\n%s", err, stderr.String())
	}
	if phase2 < killAfter || len(flushed) != 50 {
		t.Fatalf("child reported %d phase 2 lines and %d flushed removals; stderr:\n%s", phase2, len(flushed), stderr.String())
	}

	o := open(t, Options{Path: path})
	var last uint64
	held := map[uint64]string{}
	for _, e := range o.Next(0, 1<<30) {
		if e.Seq <= last {
			t.Fatalf("reopened entries out of order: %d after %d", e.Seq, last)
		}
		last = e.Seq
		held[e.Seq] = string(e.Payload)
	}
	lost := 0
	for s, p := range accepted {
		if got, ok := held[s]; !ok || got != p {
			lost++
			t.Errorf("seq %d (%s) reported accepted but reopened as %q, present %v", s, p, got, ok)
		}
	}
	for s := range flushed {
		if _, ok := held[s]; ok {
			t.Errorf("seq %d removed and flushed but back after restart", s)
		}
	}
	next := appendOne(t, o, rec(0))
	if next <= last || next <= maxSeq {
		t.Fatalf("seq after restart %d, not above the last stored %d and the last given %d", next, last, maxSeq)
	}
	t.Logf("child reported %d accepted entries, killed by SIGKILL; reopened with %d entries (%d lost), next seq %d",
		len(accepted), len(held), lost, next)
}
