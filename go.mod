module github.com/cohort-vs/cohort

go 1.26.0

require (
	github.com/HdrHistogram/hdrhistogram-go v1.4.0
	golang.org/x/sys v0.50.0
)

require github.com/klauspost/compress v1.20.4
