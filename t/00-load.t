use strict;
use warnings;
use Test::More;

use_ok('Apache::Session::Browseable::Patroni');
use_ok('Apache::Session::Browseable::Store::Patroni');
is( $Apache::Session::Browseable::Store::Patroni::VERSION,
    $Apache::Session::Browseable::Patroni::VERSION, 'versions agree' );
ok( Apache::Session::Browseable::Patroni->isa('Apache::Session'), 'is an Apache::Session' );
for my $m (qw(insert update materialize remove close DESTROY)) {
    ok( Apache::Session::Browseable::Store::Patroni->can($m), "store can $m" );
}
for my $m (qw(populate generate validate serialize unserialize searchOn searchOnExpr get_key_from_all_sessions deleteIfLowerThan)) {
    ok( Apache::Session::Browseable::Patroni->can($m), "session class can $m" );
}
done_testing;
