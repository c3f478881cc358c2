// Command plot draws `wxflow bench --json` runs against their concurrency,
// one line per pay API, as a PNG for docs/PERFORMANCE.md: on the left the
// orders per second, on the right wxflow's CPU per order (solid) beside the
// ceiling's (dashed).
//
//	go run ./scripts/plot -o docs/throughput.png run-v2-1.json run-v3-1.json …
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"log"
	"math"
	"os"
	"slices"
	"sort"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// run is the part of a bench report the plot needs.
type run struct {
	Concurrency   int     `json:"concurrency"`
	PayAPI        string  `json:"pay_api"`
	OrdersPerS    float64 `json:"orders_per_s"`
	CPUMSPerOrder float64 `json:"cpu_ms_per_order"`
	Ceiling       struct {
		CPUMSPerOrder float64 `json:"cpu_ms_per_order"`
	} `json:"ceiling"`
}

const (
	width, height = 1000, 440
	panel         = width / 2
	left, right   = 60, 20
	top, bottom   = 64, 50
)

var colors = map[string]color.RGBA{"v2": {31, 111, 67, 255}, "v3": {180, 60, 40, 255}, "mixed": {40, 80, 170, 255}}

func main() {
	out := flag.String("o", "throughput.png", "PNG to write")
	flag.Parse()
	byAPI := map[string][]run{}
	for _, f := range flag.Args() {
		raw, err := os.ReadFile(f)
		if err != nil {
			log.Fatal(err)
		}
		var r run
		if err := json.Unmarshal(raw, &r); err != nil {
			log.Fatalf("%s: %v", f, err)
		}
		byAPI[r.PayAPI] = append(byAPI[r.PayAPI], r)
	}
	if len(byAPI) == 0 {
		log.Fatal("give bench JSON files")
	}
	apis := make([]string, 0, len(byAPI))
	maxC, maxRate, maxCPU := 1, 0.0, 0.0
	for api, runs := range byAPI {
		apis = append(apis, api)
		sort.Slice(runs, func(i, j int) bool { return runs[i].Concurrency < runs[j].Concurrency })
		for _, r := range runs {
			maxC = max(maxC, r.Concurrency)
			maxRate = math.Max(maxRate, r.OrdersPerS)
			maxCPU = math.Max(maxCPU, math.Max(r.CPUMSPerOrder, r.Ceiling.CPUMSPerOrder))
		}
	}
	slices.Sort(apis)
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	rate := newChart(img, 0, maxC, niceMax(maxRate), "orders/s", "%5.0f")
	cpu := newChart(img, panel, maxC, niceMax(maxCPU), "CPU ms per order (dashed: ceiling)", "%5.1f")
	for i, api := range apis {
		c := colors[api]
		runs := byAPI[api]
		rate.series(runs, func(r run) float64 { return r.OrdersPerS }, c, false)
		cpu.series(runs, func(r run) float64 { return r.CPUMSPerOrder }, c, false)
		cpu.series(runs, func(r run) float64 { return r.Ceiling.CPUMSPerOrder }, c, true)
		text(img, left+10+i*80, top-10, api, c)
	}
	text(img, width/2-220, 16, "wxflow bench against concurrency (orders in flight), by pay API", color.Black)
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		log.Fatal(err)
	}
}

// chart is one panel: x the concurrency on a log scale, y linear from 0.
type chart struct {
	img        *image.RGBA
	x0         int
	maxX, maxY float64
}

func newChart(img *image.RGBA, x0, maxC int, maxY float64, title, yFormat string) *chart {
	c := &chart{img: img, x0: x0, maxX: math.Log2(float64(maxC)), maxY: maxY}
	grey := color.RGBA{200, 200, 200, 255}
	for v := 0.0; v <= maxY+1e-9; v += maxY / 5 {
		line(img, x0+left, c.y(v), x0+panel-right, c.y(v), grey, false)
		text(img, x0+8, c.y(v)+4, fmt.Sprintf(yFormat, v), color.Black)
	}
	for conc := 1; conc <= maxC; conc *= 2 {
		text(img, c.x(conc)-6, height-bottom+18, fmt.Sprint(conc), color.Black)
	}
	text(img, x0+left, height-12, "concurrency", color.Black)
	text(img, x0+left, top-30, title, color.Black)
	return c
}

func (c *chart) x(conc int) int {
	if c.maxX == 0 {
		return c.x0 + left
	}
	return c.x0 + left + int(math.Log2(float64(conc))/c.maxX*float64(panel-left-right))
}

func (c *chart) y(v float64) int { return height - bottom - int(v/c.maxY*float64(height-top-bottom)) }

func (c *chart) series(runs []run, get func(run) float64, col color.RGBA, dashed bool) {
	for i, r := range runs {
		dot(c.img, c.x(r.Concurrency), c.y(get(r)), col)
		if i > 0 {
			p := runs[i-1]
			line(c.img, c.x(p.Concurrency), c.y(get(p)), c.x(r.Concurrency), c.y(get(r)), col, dashed)
		}
	}
}

// niceMax rounds v up to a round multiple of a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func text(img *image.RGBA, x, y int, s string, c color.Color) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func dot(img *image.RGBA, x, y int, c color.Color) {
	for dx := -3; dx <= 3; dx++ {
		for dy := -3; dy <= 3; dy++ {
			img.Set(x+dx, y+dy, c)
		}
	}
}

// line draws a straight line, two pixels thick; dashed draws every other 6 pixels.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color, dashed bool) {
	steps := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= steps; i++ {
		if dashed && (i/6)%2 == 1 {
			continue
		}
		x := x0 + (x1-x0)*i/steps
		y := y0 + (y1-y0)*i/steps
		img.Set(x, y, c)
		img.Set(x, y+1, c)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
