package httpapi

import (
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// ClientAddr is the key tidegate counts a client by: its IP address, or
// for IPv6 its /64, which one host or site holds whole.
func ClientAddr(addr net.Addr) string { return clientKey(addr.String()) }

// clientKey is ClientAddr of a "host:port" address.
func clientKey(hostPort string) string {
	ap, err := netip.ParseAddrPort(hostPort)
	if err != nil {
		return hostPort
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// LimitConnsPerClient caps the connections open at once from one client
// address (ClientAddr). A connection past the cap is answered 429 and
// closed at accept, before any of it is read.
func LimitConnsPerClient(ln net.Listener, limit int) net.Listener {
	return &connLimiter{Listener: ln, limit: limit, open: map[string]int{}}
}

type connLimiter struct {
	net.Listener
	limit int
	mu    sync.Mutex
	open  map[string]int // holds only addresses with connections open
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := ClientAddr(c.RemoteAddr())
		l.mu.Lock()
		full := l.open[addr] >= l.limit
		if !full {
			l.open[addr]++
		}
		l.mu.Unlock()
		if full {
			refuseConn(c)
			continue
		}
		return &countedConn{Conn: c, done: func() { l.closed(addr) }}, nil
	}
}

func (l *connLimiter) closed(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[addr]--; l.open[addr] <= 0 {
		delete(l.open, addr)
	}
}

const tooManyConns = `{"error":{"message":"too many connections from this address","type":"rate_limit_error","code":"too_many_connections","param":null}}` + "\n"

// refuseConn answers on a fresh connection, whose empty send buffer takes
// the few bytes at once, and closes it. The client may see a reset instead
// when it had already sent its request: nothing of it is read.
func refuseConn(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = io.WriteString(c, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: "+
		strconv.Itoa(len(tooManyConns))+"\r\n\r\n"+tooManyConns)
	_ = c.Close()
}

// countedConn gives its place back once, on its first Close.
type countedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.done)
	return err
}
