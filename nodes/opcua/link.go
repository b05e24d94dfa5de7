package opcua

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/gopcua/opcua/ua"
)

// isLinkError reports whether err shows that the session or its link is
// gone, rather than a problem with one request.
func isLinkError(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne):
		return true
	}
	for _, s := range []ua.StatusCode{ua.StatusBadSessionIDInvalid, ua.StatusBadSessionClosed, ua.StatusBadSessionNotActivated,
		ua.StatusBadSecureChannelIDInvalid, ua.StatusBadSecureChannelClosed, ua.StatusBadServerNotConnected,
		ua.StatusBadConnectionClosed, ua.StatusBadTimeout, ua.StatusBadCommunicationError, ua.StatusBadNoSubscription,
		ua.StatusBadSubscriptionIDInvalid} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
