//! The protocol driven by hand: paths, messages and a receiver session, no sockets.

use bytes::BytesMut;

use super::*;

fn path(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

fn file(p: &str, size: u64) -> Header {
    Header {
        kind: Kind::File,
        algo: Algo::Blake3,
        mode: 0o644,
        size,
        path: path(p),
    }
}

/// The payload of a message's frame (what `on_frame` gets).
fn payload(msg: &Message) -> Vec<u8> {
    msg.to_frame()[4..].to_vec()
}

#[test]
fn unsafe_paths_are_refused_with_their_reason() {
    let cases: &[(&[u8], PathError)] = &[
        (b"", PathError::Empty),
        (b"/etc/passwd", PathError::Absolute),
        (b"/", PathError::Absolute),
        (b"..", PathError::ParentDir),
        (b"../x", PathError::ParentDir),
        (b"a/../../x", PathError::ParentDir),
        (b"a/..", PathError::ParentDir),
        (b".", PathError::CurrentDir),
        (b"./a", PathError::CurrentDir),
        (b"a/./b", PathError::CurrentDir),
        (b"a//b", PathError::EmptyComponent),
        (b"a/", PathError::EmptyComponent),
        (b"a/b/", PathError::EmptyComponent),
        (b"a\0b", PathError::Nul),
        (b"a/\0", PathError::Nul),
        (b".sockit-partial-00", PathError::Reserved),
        (b"d/.sockit-partial-x", PathError::Reserved),
    ];
    for (raw, want) in cases {
        assert_eq!(
            RelPath::new(*raw).unwrap_err(),
            *want,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    assert_eq!(
        RelPath::new(vec![b'a'; 256]).unwrap_err(),
        PathError::NameTooLong
    );
    let long: Vec<u8> = std::iter::repeat_n(b"abcdefg/".as_slice(), 600)
        .flatten()
        .copied()
        .chain(*b"x")
        .collect();
    assert_eq!(RelPath::new(long).unwrap_err(), PathError::TooLong);
}

#[test]
fn ordinary_relative_paths_are_accepted() {
    for ok in [
        "a",
        "a/b/c.txt",
        "...",
        "..a",
        "a..",
        ".hidden",
        "sp ace/ü",
        "back\\slash",
    ] {
        let p = path(ok);
        assert_eq!(p.as_bytes(), ok.as_bytes());
    }
    let non_utf8 = RelPath::new(vec![0xff, b'/', 0xfe]).unwrap();
    assert_eq!(non_utf8.components().count(), 2);
    let abc = path("a/b/c");
    let (dirs, last) = abc.split_last();
    assert_eq!(dirs, vec![b"a".as_slice(), b"b"]);
    assert_eq!(last, b"c");
    assert_eq!(path("a").join(b"b").unwrap(), path("a/b"));
    assert!(path("a").join(b"..").is_err());
}

#[test]
fn partial_names_depend_on_path_and_size() {
    let p = path("dir/file");
    assert_eq!(p.partial_name(10), p.partial_name(10));
    assert_ne!(p.partial_name(10), p.partial_name(11));
    assert_ne!(p.partial_name(10), path("dir/filf").partial_name(10));
    assert!(p.partial_name(10).starts_with(PARTIAL_PREFIX));
    // A partial name is never a name a sender may use.
    assert_eq!(
        RelPath::new(p.partial_name(10)).unwrap_err(),
        PathError::Reserved
    );
}

#[test]
fn every_message_round_trips() {
    let msgs = [
        Message::Hello { version: VERSION },
        Message::Header(file("a/b", 123)),
        Message::Header(Header {
            kind: Kind::Dir,
            algo: Algo::Md5,
            mode: 0o755,
            size: 0,
            path: path("d"),
        }),
        Message::Offer {
            offset: 1 << 40,
            origin: Origin::Partial,
        },
        Message::Skip {
            reason: "exists".into(),
        },
        Message::Link(Link {
            path: path("a/l"),
            target: b"../b/c\xff".to_vec(),
        }),
        Message::Digest(vec![7; 32]),
        Message::Ack(vec![]),
        Message::End,
        Message::Error("no".into()),
    ];
    let mut wire = BytesMut::new();
    for m in &msgs {
        m.encode(&mut wire);
    }
    let mut codec = codec();
    for m in &msgs {
        let frame = codec.decode_frame(&mut wire).unwrap().unwrap();
        assert_eq!(&Message::decode(&frame).unwrap(), m);
    }
    assert!(wire.is_empty());
}

#[test]
fn malformed_messages_are_errors() {
    assert_eq!(Message::decode(b""), Err(DecodeError::Empty));
    assert_eq!(Message::decode(b"Z"), Err(DecodeError::UnknownKind(b'Z')));
    assert_eq!(Message::decode(b"Vother\x01"), Err(DecodeError::BadHello));
    assert_eq!(
        Message::decode(b"F\0\x01"),
        Err(DecodeError::Malformed('F'))
    );
    assert_eq!(Message::decode(b"O\0"), Err(DecodeError::Malformed('O')));
    let mut bad_algo = payload(&Message::Header(file("a", 1)));
    bad_algo[2] = 9;
    assert_eq!(Message::decode(&bad_algo), Err(DecodeError::UnknownAlgo(9)));
    // A raw header with an unsafe path (the encoder cannot produce one).
    let mut raw = payload(&Message::Header(file("a", 1)));
    raw.truncate(15);
    raw.extend_from_slice(b"../escape");
    assert!(matches!(
        Message::decode(&raw),
        Err(DecodeError::Path {
            reason: PathError::ParentDir,
            ..
        })
    ));
    // A directory with a size.
    let mut dir = payload(&Message::Header(file("a", 5)));
    dir[1] = 1;
    assert_eq!(Message::decode(&dir), Err(DecodeError::Malformed('F')));
}

#[test]
fn a_whole_session_in_order() {
    let mut r = Receiver::new();
    assert_eq!(r.want(), Want::Frame);
    assert_eq!(r.on_eof(), Close::BetweenFiles);
    assert_eq!(
        r.on_frame(&payload(&Message::Hello { version: VERSION })),
        Ok(Event::Hello)
    );
    assert_eq!(r.hello(), Message::Hello { version: VERSION });

    let dir = Header {
        kind: Kind::Dir,
        algo: Algo::Blake3,
        mode: 0o700,
        size: 0,
        path: path("d"),
    };
    assert_eq!(
        r.on_frame(&payload(&Message::Header(dir.clone()))),
        Ok(Event::Dir(dir))
    );
    assert_eq!(r.dir_done(), Message::Ack(vec![]));

    let h = file("d/f", 10);
    assert_eq!(
        r.on_frame(&payload(&Message::Header(h.clone()))),
        Ok(Event::File(h.clone()))
    );
    assert_eq!(
        r.offer(4, Origin::Partial),
        Message::Offer {
            offset: 4,
            origin: Origin::Partial
        }
    );
    assert_eq!(r.want(), Want::Bytes(6));
    assert_eq!(r.on_eof(), Close::MidFile);
    r.on_bytes(5);
    assert_eq!(r.want(), Want::Bytes(1));
    r.on_bytes(1);
    assert_eq!(r.want(), Want::Frame);
    assert_eq!(r.on_eof(), Close::MidFile);
    assert_eq!(
        r.on_frame(&payload(&Message::Digest(vec![1; 32]))),
        Ok(Event::Digest(vec![1; 32]))
    );
    assert_eq!(r.verified(vec![1; 32]), Message::Ack(vec![1; 32]));

    // An empty file: no bytes, straight to the digest.
    let empty = file("e", 0);
    r.on_frame(&payload(&Message::Header(empty))).unwrap();
    r.offer(0, Origin::Fresh);
    assert_eq!(r.want(), Want::Frame);
    r.on_frame(&payload(&Message::Digest(vec![0; 32]))).unwrap();
    r.verified(vec![0; 32]);

    // A skipped file.
    r.on_frame(&payload(&Message::Header(file("s", 3))))
        .unwrap();
    assert!(matches!(r.skip("exists"), Message::Skip { .. }));
    assert_eq!(r.want(), Want::Frame);

    assert_eq!(r.on_frame(&payload(&Message::End)), Ok(Event::End));
    assert_eq!(r.end(), Message::End);
    assert_eq!(r.want(), Want::Nothing);
    assert_eq!(r.on_eof(), Close::Complete);
}

#[test]
fn messages_out_of_order_are_protocol_errors() {
    let hello = payload(&Message::Hello { version: VERSION });
    let header = payload(&Message::Header(file("f", 3)));
    let digest = payload(&Message::Digest(vec![0; 32]));

    // A header before the hello.
    let mut r = Receiver::new();
    assert!(matches!(
        r.on_frame(&header),
        Err(ProtocolError::Unexpected { .. })
    ));

    // Another version.
    let mut r = Receiver::new();
    assert_eq!(
        r.on_frame(&payload(&Message::Hello { version: 9 })),
        Err(ProtocolError::Version(9))
    );

    // A digest with no file, and a digest before the bytes.
    let mut r = Receiver::new();
    r.on_frame(&hello).unwrap();
    assert!(r.on_frame(&digest).is_err());
    let mut r = Receiver::new();
    r.on_frame(&hello).unwrap();
    r.on_frame(&header).unwrap();
    r.offer(0, Origin::Fresh);
    assert_eq!(r.want(), Want::Bytes(3));

    // A digest of the wrong length.
    let mut r = Receiver::new();
    r.on_frame(&hello).unwrap();
    r.on_frame(&header).unwrap();
    r.offer(3, Origin::Existing);
    assert!(matches!(
        r.on_frame(&payload(&Message::Digest(vec![0; 16]))),
        Err(ProtocolError::DigestLength { got: 16, .. })
    ));

    // Receiver-side messages coming from the sender.
    let mut r = Receiver::new();
    r.on_frame(&hello).unwrap();
    assert!(r.on_frame(&payload(&Message::Ack(vec![]))).is_err());
    assert!(r.on_frame(&hello).is_err(), "second hello");
}

#[test]
fn an_offer_never_exceeds_the_size() {
    let mut r = Receiver::new();
    r.on_frame(&payload(&Message::Hello { version: VERSION }))
        .unwrap();
    r.on_frame(&payload(&Message::Header(file("f", 3))))
        .unwrap();
    assert_eq!(
        r.offer(10, Origin::Partial),
        Message::Offer {
            offset: 3,
            origin: Origin::Partial
        }
    );
    assert_eq!(r.want(), Want::Frame);
}

#[test]
fn sum_lines_match_coreutils() {
    let d = [0xab, 0x01];
    assert_eq!(sum_line(&d, &path("a/b.txt")), b"ab01  a/b.txt\n");
    assert_eq!(sum_line(&d, &path("new\nline")), b"\\ab01  new\\nline\n");
    assert_eq!(
        sum_line(&d, &path("back\\slash")),
        b"\\ab01  back\\\\slash\n"
    );
}

#[test]
fn hashers_match_known_digests() {
    let cases = [
        (Algo::Md5, "900150983cd24fb0d6963f7d28e17f72"),
        (
            Algo::Sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            Algo::Blake3,
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
        ),
    ];
    for (algo, want) in cases {
        let mut h = algo.hasher();
        h.update(b"a");
        h.update(b"bc");
        let d = h.finalize();
        assert_eq!(d.len(), algo.digest_len());
        assert_eq!(hex(&d), want, "{algo}");
    }
}

#[test]
fn link_targets_must_stay_inside_dir() {
    let ok: &[(&str, &[u8])] = &[
        ("l", b"x"),
        ("l", b"."),
        ("l", b"sub/dir/file"),
        ("a/l", b".."),
        ("a/l", b"../x"),
        ("a/b/l", b"../../x/y"),
        ("a/l", b"./../x//y/"),
    ];
    for (link, target) in ok {
        assert_eq!(
            check_link(&path(link), target),
            Ok(()),
            "{link} -> {target:?}"
        );
    }
    let bad: &[(&str, &[u8], LinkError)] = &[
        ("l", b"", LinkError::Empty),
        ("l", b"/etc/passwd", LinkError::Absolute),
        ("l", b"..", LinkError::Escapes),
        ("l", b"../x", LinkError::Escapes),
        ("a/l", b"../../x", LinkError::Escapes),
        ("a/l", b"x/../..", LinkError::ParentAfterName),
        ("a/l", b"up/..", LinkError::ParentAfterName),
        ("l", b"a\0b", LinkError::Nul),
    ];
    for (link, target, why) in bad {
        assert_eq!(
            check_link(&path(link), target).as_ref(),
            Err(why),
            "{link} -> {target:?}"
        );
    }
    assert_eq!(
        check_link(&path("l"), &vec![b'a'; MAX_PATH + 1]),
        Err(LinkError::TooLong)
    );
}

#[test]
fn link_headers_are_answered_and_unsafe_ones_skipped() {
    let mut r = Receiver::new();
    r.on_frame(&payload(&Message::Hello { version: VERSION }))
        .unwrap();
    let _ = r.hello();
    let safe = Link {
        path: path("a/l"),
        target: b"../x".to_vec(),
    };
    assert_eq!(
        r.on_frame(&payload(&Message::Link(safe.clone()))),
        Ok(Event::Link(safe))
    );
    // Nothing else may come before the driver answers.
    assert!(r.on_frame(&payload(&Message::End)).is_err());
    let mut r = Receiver::new();
    r.on_frame(&payload(&Message::Hello { version: VERSION }))
        .unwrap();
    let _ = r.hello();
    let out = Link {
        path: path("l"),
        target: b"../../etc".to_vec(),
    };
    assert_eq!(
        r.on_frame(&payload(&Message::Link(out.clone()))),
        Ok(Event::UnsafeLink {
            link: out,
            reason: LinkError::Escapes
        })
    );
    assert!(matches!(r.skip("no"), Message::Skip { .. }));
    assert_eq!(r.on_eof(), Close::BetweenFiles);
    assert_eq!(r.on_frame(&payload(&Message::End)), Ok(Event::End));
}

#[test]
fn link_headers_with_lengths_that_do_not_add_up_are_malformed() {
    let mut raw = payload(&Message::Link(Link {
        path: path("l"),
        target: b"x".to_vec(),
    }));
    // Claims a target longer than the frame.
    raw[7..15].copy_from_slice(&100u64.to_be_bytes());
    assert_eq!(Message::decode(&raw), Err(DecodeError::Malformed('F')));
    // A target that eats the whole path leaves an empty path.
    raw[7..15].copy_from_slice(&2u64.to_be_bytes());
    assert!(matches!(
        Message::decode(&raw),
        Err(DecodeError::Path {
            reason: PathError::Empty,
            ..
        })
    ));
}
