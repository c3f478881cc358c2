// Command plot draws the throughput of `wxflow bench --json` runs against
// their concurrency, beside the ceiling, as a PNG for docs/PERFORMANCE.md.
//
//	go run ./scripts/plot -o docs/throughput.png run-1.json run-8.json …
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
	"sort"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// run is the part of a bench report the plot needs.
type run struct {
	Concurrency int     `json:"concurrency"`
	OrdersPerS  float64 `json:"orders_per_s"`
	Ceiling     struct {
		OrdersPerS float64 `json:"orders_per_s"`
	} `json:"ceiling"`
}

const (
	width, height = 720, 420
	left, right   = 70, 20
	top, bottom   = 40, 50
)

func main() {
	out := flag.String("o", "throughput.png", "PNG to write")
	flag.Parse()
	var runs []run
	for _, f := range flag.Args() {
		raw, err := os.ReadFile(f)
		if err != nil {
			log.Fatal(err)
		}
		var r run
		if err := json.Unmarshal(raw, &r); err != nil {
			log.Fatalf("%s: %v", f, err)
		}
		runs = append(runs, r)
	}
	if len(runs) == 0 {
		log.Fatal("give bench JSON files")
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].Concurrency < runs[j].Concurrency })
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	maxY := 0.0
	for _, r := range runs {
		maxY = math.Max(maxY, math.Max(r.OrdersPerS, r.Ceiling.OrdersPerS))
	}
	maxY = math.Ceil(maxY/500) * 500
	maxX := math.Log2(float64(runs[len(runs)-1].Concurrency))
	x := func(c int) int {
		if maxX == 0 {
			return left
		}
		return left + int(math.Log2(float64(c))/maxX*float64(width-left-right))
	}
	y := func(v float64) int { return height - bottom - int(v/maxY*float64(height-top-bottom)) }
	grey := color.RGBA{200, 200, 200, 255}
	for v := 0.0; v <= maxY; v += maxY / 5 {
		line(img, left, y(v), width-right, y(v), grey)
		text(img, 8, y(v)+4, fmt.Sprintf("%5.0f", v), color.Black)
	}
	for _, r := range runs {
		text(img, x(r.Concurrency)-6, height-bottom+18, fmt.Sprint(r.Concurrency), color.Black)
	}
	text(img, width/2-60, height-10, "concurrency (orders in flight)", color.Black)
	text(img, left, 20, "wxflow bench: orders/s (green: engine, grey: ceiling of NATS + SQLite)", color.Black)
	series := func(get func(run) float64, c color.RGBA) {
		for i, r := range runs {
			dot(img, x(r.Concurrency), y(get(r)), c)
			if i > 0 {
				p := runs[i-1]
				line(img, x(p.Concurrency), y(get(p)), x(r.Concurrency), y(get(r)), c)
			}
		}
	}
	series(func(r run) float64 { return r.Ceiling.OrdersPerS }, color.RGBA{140, 140, 140, 255})
	series(func(r run) float64 { return r.OrdersPerS }, color.RGBA{31, 111, 67, 255})
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		log.Fatal(err)
	}
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

// line draws a straight line, two pixels thick.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	steps := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= steps; i++ {
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
