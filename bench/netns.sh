# Sourced by bench/below-saturation.sh and bench/profiles.sh (bash): run a
# server and its load generator on a veth pair between two network
# namespaces instead of loopback. After netns_up, start the server with
# "${IN_SRV[@]}" and the load with "${IN_CLI[@]}" in front, and use $HOST;
# netns_down removes the namespaces and restores loopback. Uses $SRV and
# $CLI (the server's and the load generator's CPU).

HOST=127.0.0.1
IN_SRV=()
IN_CLI=()

# netns_up: a server namespace and a client namespace joined by a veth pair,
# with Receive Packet Steering sending each side's inbound packets to its
# own CPU (the server's to $SRV, the client's to $CLI), as two machines
# would each process their own. On loopback the sender's CPU runs the
# receiver's TCP path in its softirq, so under churn the client's core
# carries the server's handshakes. Needs root and ip(8); returns 1 if the
# namespaces cannot be made.
NS_SRV=okring-bs-srv NS_CLI=okring-bs-cli
netns_up() {
    netns_down
    ip netns add $NS_SRV && ip netns add $NS_CLI || return 1
    ip link add okbs0 netns $NS_SRV type veth peer name okbs1 netns $NS_CLI || return 1
    ip -n $NS_SRV addr add 10.231.0.1/24 dev okbs0
    ip -n $NS_CLI addr add 10.231.0.2/24 dev okbs1
    for ns in $NS_SRV $NS_CLI; do ip -n $ns link set lo up; done
    ip -n $NS_SRV link set okbs0 up
    ip -n $NS_CLI link set okbs1 up
    ip netns exec $NS_SRV sh -c "echo $(printf %x $((1 << SRV))) > /sys/class/net/okbs0/queues/rx-0/rps_cpus" &&
        ip netns exec $NS_CLI sh -c "echo $(printf %x $((1 << CLI))) > /sys/class/net/okbs1/queues/rx-0/rps_cpus" ||
        return 1
    HOST=10.231.0.1
    IN_SRV=(ip netns exec $NS_SRV)
    IN_CLI=(ip netns exec $NS_CLI)
}
netns_down() {
    ip netns del $NS_SRV 2>/dev/null || true
    ip netns del $NS_CLI 2>/dev/null || true
    HOST=127.0.0.1
    IN_SRV=()
    IN_CLI=()
}

