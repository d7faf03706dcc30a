package bench

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// ChartRow is one distribution in a chart panel.
type ChartRow struct {
	Label   string
	Lib     Lib
	Samples []time.Duration
}

// ChartMark is a labelled vertical reference line.
type ChartMark struct {
	Label string
	At    time.Duration
	// LabelRight puts the label right of the line instead of left of it.
	LabelRight bool
}

// ChartPanel is one plot: rows of samples on a shared time axis.
type ChartPanel struct {
	Title string
	// Log makes the axis logarithmic from Min to Max (decade ticks);
	// otherwise it is linear from 0 to Max with a tick every Step.
	Log      bool
	Min, Max time.Duration
	Step     time.Duration
	Rows     []ChartRow
	Marks    []ChartMark
}

// Chart geometry.
const (
	chartW       = 1100
	chartLeft    = 400
	chartRight   = 30
	chartHeader  = 64 // title and legend
	chartPanelTH = 44 // a panel's title and mark labels
	chartRowH    = 30
	chartAxisH   = 50
)

var (
	colKubelease = color.RGBA{31, 119, 180, 255}
	colClientGo  = color.RGBA{230, 120, 20, 255}
	colGrid      = color.RGBA{225, 225, 225, 255}
	colText      = color.RGBA{30, 30, 30, 255}
	colMark      = color.RGBA{200, 30, 30, 255}
)

// chartHeight is the image height for panels.
func chartHeight(panels []ChartPanel) int {
	h := chartHeader
	for _, p := range panels {
		h += chartPanelTH + len(p.Rows)*chartRowH + chartAxisH
	}
	return h
}

// WriteChart draws the panels, one under the other, and writes the PNG to
// w. In each row every sample is a dot (jittered vertically), the median a
// tall black bar and the 99th percentile a short red bar.
func WriteChart(w io.Writer, title string, panels []ChartPanel) error {
	img := image.NewRGBA(image.Rect(0, 0, chartW, chartHeight(panels)))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	text(img, 12, 22, title, colText)
	text(img, 12, 42, "dots: one trial each; tall black bar: median; short red bar: 99th percentile", colText)
	legendX := chartW - 250
	fillRect(img, legendX, 12, 12, 12, colKubelease)
	text(img, legendX+18, 23, "kubelease", colText)
	fillRect(img, legendX+110, 12, 12, 12, colClientGo)
	text(img, legendX+128, 23, "client-go", colText)
	y := chartHeader
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range panels {
		y = drawPanel(img, p, y, rng)
	}
	return png.Encode(w, img)
}

// drawPanel draws p with its top at y and returns the y below it.
func drawPanel(img *image.RGBA, p ChartPanel, y int, rng *rand.Rand) int {
	plotR := chartW - chartRight
	x := func(d time.Duration) int {
		var f float64
		if p.Log {
			d = min(max(d, p.Min), p.Max)
			f = math.Log(float64(d)/float64(p.Min)) / math.Log(float64(p.Max)/float64(p.Min))
		} else {
			f = float64(min(max(d, 0), p.Max)) / float64(p.Max)
		}
		return chartLeft + int(f*float64(plotR-chartLeft))
	}
	text(img, 12, y+18, p.Title, colText)
	top := y + chartPanelTH
	bottom := top + len(p.Rows)*chartRowH

	// Grid and tick labels.
	tick := func(d time.Duration, label bool) {
		vline(img, x(d), top, bottom, colGrid)
		if label {
			l := fmtTick(d)
			text(img, x(d)-len(l)*7/2, bottom+16, l, colText)
		}
	}
	if p.Log {
		for d := p.Min; d <= p.Max; d *= 10 {
			for _, m := range []time.Duration{1, 2, 5} {
				if d*m <= p.Max {
					tick(d*m, m == 1)
				}
			}
		}
	} else {
		for d := time.Duration(0); d <= p.Max; d += p.Step {
			tick(d, true)
		}
	}
	hline(img, chartLeft, plotR, bottom, colText)
	axis := "from the release (or crash) to the peer's work starting"
	if p.Log {
		axis += " (log scale)"
	}
	text(img, chartLeft+(plotR-chartLeft)/2-len(axis)*7/2, bottom+36, axis, colText)
	for _, m := range p.Marks {
		dashed(img, x(m.At), top-6, bottom, colMark)
		lx := x(m.At) - 4 - len(m.Label)*7
		if m.LabelRight {
			lx = x(m.At) + 4
		}
		text(img, lx, top-8, m.Label, colMark)
	}

	for i, r := range p.Rows {
		y0 := top + i*chartRowH
		mid := y0 + chartRowH/2
		if i > 0 {
			hline(img, 10, plotR, y0, colGrid)
		}
		text(img, 12, mid+4, r.Label, colText)
		c := colKubelease
		if r.Lib == ClientGo {
			c = colClientGo
		}
		faint := color.NRGBA{c.R, c.G, c.B, 120}
		for _, s := range r.Samples {
			dot(img, x(s), mid-7+rng.IntN(15), faint)
		}
		if len(r.Samples) == 0 {
			text(img, chartLeft+8, mid+4, "no samples", colMark)
			continue
		}
		d := Summarise(r.Samples)
		fillRect(img, x(d.P50)-1, y0+3, 3, chartRowH-6, colText)
		fillRect(img, x(d.P99)-1, mid-6, 3, 13, colMark)
	}
	return bottom + chartAxisH
}

// fmtTick formats an axis tick: 100us, 1ms, 10ms, 100ms, 1s, 10s, 15s.
func fmtTick(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%dus", d/time.Microsecond)
	case d < time.Second:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

func text(img draw.Image, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func vline(img *image.RGBA, x, y0, y1 int, c color.Color) {
	for y := y0; y <= y1; y++ {
		img.Set(x, y, c)
	}
}

func dashed(img *image.RGBA, x, y0, y1 int, c color.Color) {
	for y := y0; y <= y1; y++ {
		if (y/4)%2 == 0 {
			img.Set(x, y, c)
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.Color) {
	for x := x0; x <= x1; x++ {
		img.Set(x, y, c)
	}
}

func fillRect(img *image.RGBA, x, y, w, h int, c color.Color) {
	draw.Draw(img, image.Rect(x, y, x+w, y+h), image.NewUniform(c), image.Point{}, draw.Over)
}

// dot draws a small filled circle, blended over what is there.
func dot(img *image.RGBA, cx, cy int, c color.Color) {
	src := image.NewUniform(c)
	for dy := -3; dy <= 3; dy++ {
		for dx := -3; dx <= 3; dx++ {
			if dx*dx+dy*dy <= 9 {
				draw.Draw(img, image.Rect(cx+dx, cy+dy, cx+dx+1, cy+dy+1), src, image.Point{}, draw.Over)
			}
		}
	}
}
