package router

// Serves reports whether a model name would be routed: a public name, or
// provider/model of a provider that lists it or serves any name.
func (r *Router) Serves(model string) bool {
	_, err := r.route(model)
	return err == nil
}
