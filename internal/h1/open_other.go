//go:build !unix

package h1

// open cannot peek at the socket here: an idle connection is taken as open,
// and a request on one the server closed fails like any other.
func (c *conn) open() bool { return c.br.Buffered() == 0 }
