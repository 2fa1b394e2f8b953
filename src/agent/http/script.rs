//! A scripted peer for the state-machine tests: reads come from a queue
//! of steps, writes are accepted up to a scripted window.

use super::connection::Peer;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::RawFd;
use std::rc::Rc;

/// One thing the next read returns.
pub enum In {
    Bytes(Vec<u8>),
    /// `WouldBlock`: nothing more has arrived yet.
    Wait,
    /// End of stream.
    Eof,
    Reset,
}

/// What the test sees of a scripted peer after the server has it.
#[derive(Default)]
pub struct Wire {
    pub input: VecDeque<In>,
    /// Bytes the peer takes before `WouldBlock`; `None`: unlimited.
    pub window: Option<usize>,
    pub written: Vec<u8>,
    pub dropped: bool,
}

pub struct Scripted {
    pub fd: RawFd,
    pub wire: Rc<RefCell<Wire>>,
}

impl Scripted {
    pub fn new(fd: RawFd, input: Vec<In>) -> (Scripted, Rc<RefCell<Wire>>) {
        let wire = Rc::new(RefCell::new(Wire {
            input: input.into(),
            ..Wire::default()
        }));
        (
            Scripted {
                fd,
                wire: wire.clone(),
            },
            wire,
        )
    }
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut wire = self.wire.borrow_mut();
        match wire.input.pop_front() {
            None | Some(In::Wait) => Err(ErrorKind::WouldBlock.into()),
            Some(In::Eof) => Ok(0),
            Some(In::Reset) => Err(ErrorKind::ConnectionReset.into()),
            Some(In::Bytes(mut b)) => {
                let n = b.len().min(buf.len());
                buf[..n].copy_from_slice(&b[..n]);
                if n < b.len() {
                    wire.input.push_front(In::Bytes(b.split_off(n)));
                }
                Ok(n)
            }
        }
    }
}

impl Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut wire = self.wire.borrow_mut();
        let n = match wire.window {
            None => buf.len(),
            Some(0) => return Err(ErrorKind::WouldBlock.into()),
            Some(w) => {
                let n = w.min(buf.len());
                wire.window = Some(w - n);
                n
            }
        };
        wire.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.wire.borrow_mut().dropped = true;
    }
}

impl Peer for Scripted {
    fn fd(&self) -> RawFd {
        self.fd
    }
}
