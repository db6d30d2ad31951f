#!/usr/bin/env bash
# Scaling past 2 cores: W1, W2 and W1u with 1, 2, 4, 8 and 16 local workers.
# Build first (deploy/setup.sh or a Release build into build-dev), then:
#   bash bench/scale_cores.sh      (expects build-dev/; set B and M to use another build)
#   build-dev/deps may hold copies of the shared libraries for a machine without them
export LD_LIBRARY_PATH=$PWD/build-dev/deps:$PWD/build-dev/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
B=${B:-build-dev/bin}; M=${M:-$PWD/build-dev/lib/libdpool_testtasks.so}
echo "cores: $(nproc)"; lscpu | grep "Model name"
$B/serial_spin -n 1000 -r 1 1000 2>/dev/null | sed 's/^/serial spin_us 1000 items\/s: /'
for j in 1 2 4 8 16; do echo "W1 square 4M j=$j: $($B/bench_map -j $j -n 4000000 -r 3 square $M 2>/dev/null) items/s"; done
for j in 1 2 4 8 16; do n=$((500*j)); echo "W2 spin_us 1000 x $n j=$j: $($B/bench_map -j $j -n $n -r 1 -v 1000 spin_us $M 2>/dev/null) items/s"; done
for j in 1 2 4 8 16; do echo "W1u chunk 1 200k j=$j: $($B/bench_map -j $j -n 200000 -r 1 -c 1 square $M 2>/dev/null) items/s"; done
