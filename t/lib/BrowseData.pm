package BrowseData;

# Test data for the class methods (t/2x-*.t): LL::NG-like sessions built by
# a pure function of their number, loaded with COPY, and an independent
# model of what PostgreSQL returns for them, so that every expected result
# is computed in Perl from the data the test generated:
#
#   session($n)            the session hash (fresh scalars at every call)
#   id($n)                 its id
#   load($pg, \@n, %opt)   COPY the sessions into a table (default sessions)
#   arrow($session, $f)    what `a_session ->> 'f'` returns (undef for NULL)
#   jsonb_text($value)     PostgreSQL's jsonb text output of a Perl value
#   capture_stderr { ... } runs the code, returns (stderr text, results)

use strict;
use warnings;
use utf8;
use B ();
use Encode ();
use File::Temp ();
use JSON::XS ();

sub id { sprintf '%064x', $_[0] }

sub session {
    my $n = 0 + shift;    # a number, never a string (see is_number)
    my %s = (
        _session_id      => id($n),
        _session_kind    => $n % 10 == 0 ? 'Persistent' : 'SSO',
        _whatToTrace     => 'user' . int( $n / 3 ),    # three sessions per user
        _utime           => 1700000000 + $n,
        _httpSessionType => $n % 5 ? '' : 'OIDC',
        MixedCase        => "Mixed $n",
        _2fDevices       => '[{"type":"TOTP","name":"phone"}]',
        cn               => "Éléonore 会话 🔐 $n",
        ipAddr           => '10.0.' . ( $n % 7 ) . '.' . ( $n % 11 ),
        half             => $n + 0.5,
        nested           => { groups => [ 'a', 'b', "g$n" ], attrs => { 'clé' => 'välue', n => $n + 0, '' => 0 } },
        list             => [ 1, 'two', { three => 3 }, [] ],
        nothing          => undef,
        empty            => '',
        ctrl             => "tab\there\nnew \"quoted\" back\\slash \x01",
    );
    $s{mail} = "user$n\@example.com" if $n % 4;    # a key some sessions lack
    return \%s;
}

my $JSON = JSON::XS->new->utf8->canonical;

# Loads sessions through COPY (as the superuser, from a file psql reads).
sub load {
    my ( $pg, $ns, %opt ) = @_;
    my $table = $opt{table} || 'sessions';
    my $make  = $opt{make} || \&session;
    my $f     = File::Temp->new( DIR => '/tmp', SUFFIX => '.sql' );
    binmode $f;
    print $f "COPY $table (id, a_session) FROM STDIN;\n";
    for my $n (@$ns) {
        my $s = $make->($n);
        my $j = $JSON->encode($s);
        $j =~ s/\\/\\\\/g;
        print $f ( $s->{_session_id} // id($n) ), "\t$j\n";
    }
    print $f "\\.\n";
    close $f;
    chmod 0644, $f->filename;
    $pg->psql_super( "\\i " . $f->filename );
    $pg->psql_super("ANALYZE $table");
}

# As JSON::XS sees it: a number that was never used as a string.
sub is_number {
    my $f = B::svref_2object( \$_[0] )->FLAGS;
    return ( $f & ( B::SVp_IOK | B::SVp_NOK ) ) && !( $f & B::SVp_POK );
}

sub json_string {
    my ($s) = @_;
    $s =~ s/(["\\])/\\$1/g;
    $s =~ s/\x08/\\b/g;
    $s =~ s/\x0c/\\f/g;
    $s =~ s/\n/\\n/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\t/\\t/g;
    $s =~ s/([\x00-\x1f])/sprintf '\\u%04x', ord $1/ge;
    return qq{"$s"};
}

# jsonb's text form: ", " and ": " separators, object keys ordered by
# their length in bytes, then bytewise.
sub jsonb_text {
    my ($v) = @_;
    return 'null' unless defined $v;
    if ( ref $v eq 'HASH' ) {
        my @k = sort {
            my ( $x, $y ) = ( Encode::encode_utf8($a), Encode::encode_utf8($b) );
            length($x) <=> length($y) or $x cmp $y
        } keys %$v;
        return '{' . join( ', ', map { json_string($_) . ': ' . jsonb_text( $v->{$_} ) } @k ) . '}';
    }
    if ( ref $v eq 'ARRAY' ) {
        return '[' . join( ', ', map { jsonb_text($_) } @$v ) . ']';
    }
    return is_number($v) ? "$v" : json_string($v);
}

# `a_session ->> 'f'`: text of a string, number or nested value; SQL NULL
# (undef) for a missing key or a JSON null.
sub arrow {
    my ( $s, $f ) = @_;
    return undef unless ref $s eq 'HASH' and exists $s->{$f} and defined $s->{$f};
    my $v = $s->{$f};
    return jsonb_text($v) if ref $v;
    return is_number($v) ? "$v" : $v;
}

# { id => { id => id, f => arrow(f) ... } } for the given session numbers.
sub fields_of {
    my ( $ns, @f ) = @_;
    my %r;
    for my $n (@$ns) {
        # a field named "id" gives the row's id
        $r{ id($n) } = { id => id($n), map { $_ => arrow( session($n), $_ ) } grep { $_ ne 'id' } @f };
    }
    return \%r;
}

sub sessions_of {
    my ($ns) = @_;
    return { map { ( id($_) => session($_) ) } @$ns };
}

sub capture_stderr(&) {
    my ($code) = @_;
    my $f = File::Temp->new;
    open my $save, '>&', \*STDERR or die "dup STDERR: $!";
    open STDERR, '>', $f->filename or die "redirect STDERR: $!";
    my @r   = eval { $code->() };
    my $err = $@;
    open STDERR, '>&', $save or die "restore STDERR: $!";
    die $err if $err;
    open my $in, '<:encoding(UTF-8)', $f->filename or die;
    local $/;
    my $text = <$in> // '';
    return ( $text, @r );
}

1;
