# objects.rb: builds and drops hashes, arrays and strings (alloclab programs)
n = (ARGV[0] || 100000).to_i
checksum = 0
4.times do |round|
  a = Array.new(n) { |i| { id: i, name: "item#{i}:#{round}", tags: [i % 7, i % 11, "t#{i % 13}"] } }
  h = {}
  a.each_with_index { |e, i| h[e[:name]] = e if i % 3 == 0 }
  checksum = (checksum + h.sum { |k, e| k.size + e[:tags][0] }) % 1_000_000_007
  s = a.first(n / 10).map { |e| "#{e[:id]}-#{e[:tags][2]}" }.join(",")
  checksum = (checksum + s.size) % 1_000_000_007
  h.delete_if { |k, _| k.size.even? }
  words = s.split(",").map(&:upcase).sort
  checksum = (checksum + words.size) % 1_000_000_007
  a = h = s = words = nil
  GC.start
end
puts "objects.rb: n=#{n} checksum=#{checksum}"
