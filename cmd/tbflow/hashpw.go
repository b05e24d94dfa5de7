package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

func init() {
	register("hash-password", "print a bcrypt hash of a password read from stdin", runHashPassword)
}

// passwordInput is where hash-password reads; tests replace it.
var passwordInput io.Reader = os.Stdin

func runHashPassword(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("hash-password", stderr)
	cost := fs.Int("cost", bcrypt.DefaultCost, fmt.Sprintf("bcrypt cost (%d to %d)", bcrypt.MinCost, bcrypt.MaxCost))
	setUsage(fs, stderr,
		"usage: tbflow hash-password [flags] < password",
		"",
		"Reads a password (the first line of stdin; typed without echo on a terminal)",
		"and prints its bcrypt hash, for `tbflow serve --auth-user NAME --auth-password-hash HASH`",
		"or TBFLOW_AUTH_PASSWORD_HASH.",
	)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		fmt.Fprintf(stderr, "tbflow hash-password: cost %d: want %d to %d\n", *cost, bcrypt.MinCost, bcrypt.MaxCost)
		return 2
	}
	pw, err := readPassword(passwordInput, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tbflow hash-password: %v\n", err)
		return 1
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), *cost)
	if err != nil {
		fmt.Fprintf(stderr, "tbflow hash-password: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, string(hash))
	return 0
}

// readPassword reads one line; on a terminal it prompts and does not echo.
func readPassword(in io.Reader, stderr io.Writer) (string, error) {
	var pw string
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		pw = string(b)
	} else {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	if pw == "" {
		return "", errors.New("empty password")
	}
	if len(pw) > 72 {
		return "", errors.New("password longer than 72 bytes (bcrypt's limit)")
	}
	return pw, nil
}
