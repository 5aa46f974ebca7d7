# Plots of bench/run_all.sh's figures: gnuplot -e "dir='build/bench-all'" bench/plots.gp
set terminal pngcairo size 900,540 font ",11"

set output dir."/latency.png"
set title "POST -> receiver's WebSocket frame: latency against offered rate"
set xlabel "offered messages/s"
set ylabel "latency, ms (log)"
set logscale y
set logscale x 2
set xtics (250, 500, 1000, 2000, 4000, 8000, 16000)
set grid
set key top left
plot dir."/latency.dat" index 0 using 1:2 with linespoints lw 2 title "embedded p50", \
     ""                 index 0 using 1:3 with linespoints lw 2 title "embedded p99", \
     ""                 index 0 using 1:4 with linespoints lw 1 dt 2 title "embedded p99.9", \
     ""                 index 1 using 1:2 with linespoints lw 2 title "split p50", \
     ""                 index 1 using 1:3 with linespoints lw 2 title "split p99", \
     ""                 index 1 using 1:4 with linespoints lw 1 dt 2 title "split p99.9"

set output dir."/scaling.png"
set title "split mode: messages/s against intercomm mta processes (same 2 cores)"
unset logscale
set xlabel "intercomm mta processes"
set ylabel "messages/s"
set xtics 1
unset logscale x
set yrange [0:*]
set key bottom right
set style data linespoints
plot dir."/scaling.dat" using 1:2 lw 2 title "accepted/s", \
     ""                 using 1:3 lw 2 title "stored/s (sustained)"
