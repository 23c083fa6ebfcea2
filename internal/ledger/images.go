package ledger

import (
	_ "embed"
	"fmt"
	"strconv"
	"time"
)

//go:embed images.csv
var shippedImages string

// ImagePrice is one image catalog entry: the price of one image of a
// quality and size ("" matches any), in its currency.
type ImagePrice struct {
	Provider  string // provider type
	Model     string
	Currency  string
	Effective time.Time
	Quality   string
	Size      string
	PerImage  float64
	Source    string
}

// Ref names the entry in ledger records.
func (p *ImagePrice) Ref() string {
	return fmt.Sprintf("%s/%s@%s:image:%s:%s", p.Provider, p.Model, p.Effective.Format("2006-01-02"), or(p.Quality, "any"), or(p.Size, "any"))
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// Cost prices n images in micro-units, saturating.
func (p *ImagePrice) Cost(n int64) int64 { return micros(float64(max(n, 0)) * p.PerImage * 1e6) }

// ParseImageCatalog reads the CSV form of the image catalog.
func ParseImageCatalog(text string) ([]ImagePrice, error) {
	recs, err := readCSV(text)
	if err != nil {
		return nil, err
	}
	var out []ImagePrice
	for i, r := range recs {
		if len(r) != 8 {
			return nil, fmt.Errorf("image catalog line %d: %d fields", i+2, len(r))
		}
		eff, err := time.Parse("2006-01-02", r[3])
		if err != nil {
			return nil, fmt.Errorf("image catalog line %d: %w", i+2, err)
		}
		v, err := strconv.ParseFloat(r[6], 64)
		if err != nil || !validPrice(v) {
			return nil, fmt.Errorf("image catalog line %d: per_image %q is not a price", i+2, r[6])
		}
		out = append(out, ImagePrice{Provider: r[0], Model: r[1], Currency: r[2], Effective: eff, Quality: r[4], Size: r[5], PerImage: v, Source: r[7]})
	}
	return out, nil
}

// Image defaults OpenAI documents for a request that sets neither.
const (
	defaultImageQuality = "standard"
	defaultImageSize    = "1024x1024"
	imageAuto           = "auto"
)

// ImageLookup returns the price of one image of a quality and size for a
// provider type's model at a time. An unset quality or size takes the
// documented default where the model has a row for it, else reads as
// "auto"; "auto" is priced at the dearest row it could be. A quality or size
// no row has is unpriced: the catalog does not guess below the truth.
func (c *Catalog) ImageLookup(providerType, model, quality, size string, at time.Time) (ImagePrice, bool) {
	rows := c.images[catalogKey(providerType, model)]
	var eff time.Time
	found := false
	for _, p := range rows {
		if !p.Effective.After(at) && (!found || p.Effective.After(eff)) {
			eff, found = p.Effective, true
		}
	}
	if !found {
		return ImagePrice{}, false
	}
	var current []ImagePrice
	for _, p := range rows {
		if p.Effective.Equal(eff) {
			current = append(current, p)
		}
	}
	quality = imageChoice(quality, defaultImageQuality, current, func(p ImagePrice) string { return p.Quality })
	size = imageChoice(size, defaultImageSize, current, func(p ImagePrice) string { return p.Size })
	var best *ImagePrice
	for i := range current {
		p := &current[i]
		if !imageMatch(p.Quality, quality) || !imageMatch(p.Size, size) {
			continue
		}
		if best == nil || p.PerImage > best.PerImage {
			best = p
		}
	}
	if best == nil {
		return ImagePrice{}, false
	}
	return *best, true
}

// imageChoice resolves an unset value to the default when a row has it.
func imageChoice(v, def string, rows []ImagePrice, field func(ImagePrice) string) string {
	if v != "" {
		return v
	}
	for _, p := range rows {
		if field(p) == def {
			return def
		}
	}
	return imageAuto
}

func imageMatch(row, want string) bool { return row == "" || want == imageAuto || row == want }
