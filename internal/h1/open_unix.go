//go:build unix

package h1

import "syscall"

// open tells whether an idle connection is still usable: nothing buffered,
// and a peek at the socket that neither finds it closed by the server nor
// finds bytes the server sent unasked (an idle-timeout answer before it
// closes). One non-blocking recv, paid once a request, not per chunk.
func (c *conn) open() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var buf [1]byte
	var peekErr error
	err = rc.Read(func(fd uintptr) bool {
		_, _, peekErr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	})
	return err == nil && (peekErr == syscall.EAGAIN || peekErr == syscall.EWOULDBLOCK)
}
