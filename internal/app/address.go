package app

import (
	"context"
	"net"

	"github.com/tidegate/tidegate/internal/store"
)

// addressSetting keeps where the gateway last served, so that `tidegate
// status` finds a gateway started with --listen without being told.
const addressSetting = "api_address"

// RecordAddress notes the address the API listens on (host:port) in the
// store; a listener on every interface is noted as loopback, which is
// where a command on the same machine reaches it.
func RecordAddress(ctx context.Context, st *store.DB, addr string) error {
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	old, created, err := st.SettingOnce(ctx, addressSetting, func() string { return addr })
	if err != nil || created || old == addr {
		return err
	}
	_, err = st.ReplaceSetting(ctx, addressSetting, old, addr)
	return err
}

// RecordedAddress is the address the gateway last served on; "" if none.
func RecordedAddress(ctx context.Context, st *store.DB) (string, error) {
	// SettingOnce with "" stores nothing useful yet reads without a second query shape.
	v, _, err := st.SettingOnce(ctx, addressSetting, func() string { return "" })
	return v, err
}
