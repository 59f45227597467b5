// The .hsmpolicy grammar as a chevrotain CstParser. Error recovery is on, so one run
// reports every syntax error; the CST (possibly partial) goes to to-ast.ts. Option
// blocks are generic (`key value, value...`): which keys a block accepts, and the type of
// each value, are checked when building the AST, where the messages can be specific.
//
// Recursion: only parenthesised expressions recurse; index.ts flattens parentheses past a
// fixed depth before parsing, so no input can exhaust the stack here.
//
// Each declaration is parsed as its own input (segment.ts). With one grammar for the whole
// file, chevrotain's re-sync recovery treats any token that may start the next top-level
// item as a sync point, so one bad rule would swallow the rest of its policy.
import { CstParser, tokenMatcher, type CstNode, type IRecognitionException, type IToken } from './cst.js';
import * as T from './tokens.js';
import { errorMessageProvider } from './parse-messages.js';

export class PolicyParser extends CstParser {
  constructor() {
    super(T.allTokens, { recoveryEnabled: true, maxLookahead: 3, errorMessageProvider });
    this.performSelfAnalysis();
  }

  /** One declaration: index.ts parses each top-level segment on its own (see segment.ts). */
  declaration = this.RULE('declaration', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.tierDecl) },
      { ALT: () => this.SUBRULE(this.filesetDecl) },
      { ALT: () => this.SUBRULE(this.policyDecl) },
      { ALT: () => this.SUBRULE(this.recallDecl) },
    ]);
  });

  tierDecl = this.RULE('tierDecl', () => {
    this.CONSUME(T.Tier);
    this.CONSUME(T.Name, { LABEL: 'name' });
    this.SUBRULE(this.block);
  });

  filesetDecl = this.RULE('filesetDecl', () => {
    this.CONSUME(T.Fileset);
    this.CONSUME(T.Name, { LABEL: 'name' });
    this.SUBRULE(this.block);
  });

  policyDecl = this.RULE('policyDecl', () => {
    this.CONSUME(T.Policy);
    this.CONSUME(T.Name, { LABEL: 'name' });
    this.OPTION(() => {
      this.CONSUME(T.On);
      this.CONSUME2(T.Name, { LABEL: 'fileset' });
    });
    this.SUBRULE(this.block);
  });

  recallDecl = this.RULE('recallDecl', () => {
    this.CONSUME(T.Recall);
    this.SUBRULE(this.block);
  });

  block = this.RULE('block', () => {
    this.CONSUME(T.LCurly);
    this.MANY(() =>
      this.OR([
        { ALT: () => this.SUBRULE(this.setting) },
        { ALT: () => this.SUBRULE(this.unknownSetting) },
        { ALT: () => this.SUBRULE(this.whenClause) },
        { ALT: () => this.SUBRULE(this.orderClause) },
        { ALT: () => this.SUBRULE(this.limitClause) },
        { ALT: () => this.SUBRULE(this.ruleDecl) },
      ]),
    );
    this.CONSUME(T.RCurly);
  });

  /** `chunk 4MiB`, `root "/a", "/b"`, `s3` (no value). */
  setting = this.RULE('setting', () => {
    this.CONSUME(T.OptionKey, { LABEL: 'key' });
    this.SUBRULE(this.values);
  });

  /** A name no block knows: parsed like a setting so the message can suggest a fix. */
  unknownSetting = this.RULE('unknownSetting', () => {
    this.CONSUME(T.Identifier, { LABEL: 'key' });
    this.SUBRULE(this.values);
  });

  values = this.RULE('values', () => {
    this.OPTION(() => {
      let last = this.CONSUME(T.Literal);
      this.MANY(() => {
        this.CONSUME(T.Comma);
        last = this.CONSUME2(T.Literal);
      });
      // `chunk 4 megs`: a word after a number, on its line, followed by no value of its own
      // (so not a misspelt option such as `chnk 4MiB`), is a unit attempt.
      this.OPTION2({
        GATE: () => isUnitAttempt(last, this.LA(1)) && !tokenMatcher(this.LA(2), T.Literal) && !tokenMatcher(this.LA(2), T.Comma),
        DEF: () => this.CONSUME3(T.Identifier, { LABEL: 'unit' }),
      });
    });
  });

  /** `when usage > 85% until usage < 70%` */
  whenClause = this.RULE('whenClause', () => {
    this.CONSUME(T.When);
    this.SUBRULE(this.comparison, { LABEL: 'high' });
    this.OPTION(() => {
      this.CONSUME(T.Until);
      this.SUBRULE2(this.comparison, { LABEL: 'low' });
    });
  });

  /** `order by last_access asc` */
  orderClause = this.RULE('orderClause', () => {
    this.CONSUME(T.Order);
    this.CONSUME(T.By);
    this.CONSUME(T.Identifier, { LABEL: 'key' });
    this.OPTION(() => this.CONSUME2(T.Identifier, { LABEL: 'dir' }));
  });

  /** `limit 50000 files` or `limit 2TiB` */
  limitClause = this.RULE('limitClause', () => {
    this.CONSUME(T.Limit);
    this.CONSUME(T.Literal, { LABEL: 'amount' });
    this.OPTION(() => this.CONSUME(T.Identifier, { LABEL: 'unit' }));
  });

  /** `rule NAME: CONDITION -> ACTION` */
  ruleDecl = this.RULE('ruleDecl', () => {
    this.CONSUME(T.Rule);
    this.CONSUME(T.Name, { LABEL: 'name' });
    this.CONSUME(T.Colon);
    this.SUBRULE(this.orExpr);
    this.CONSUME(T.Arrow);
    this.SUBRULE(this.action);
  });

  action = this.RULE('action', () => {
    this.OR([
      { ALT: () => this.CONSUME(T.Identifier, { LABEL: 'verb' }) },
      { ALT: () => this.CONSUME(T.Recall, { LABEL: 'verb' }) },
    ]);
    this.OPTION(() =>
      this.OR2([
        {
          ALT: () => {
            this.CONSUME(T.To);
            this.CONSUME2(T.Name, { LABEL: 'tier' });
          },
        },
        // `release nas`: parsed so the message can say "release to nas".
        { ALT: () => this.CONSUME3(T.Identifier, { LABEL: 'bareTier' }) },
      ]),
    );
  });

  orExpr = this.RULE('orExpr', () => {
    this.SUBRULE(this.andExpr, { LABEL: 'operands' });
    this.MANY(() => {
      this.CONSUME(T.Or);
      this.SUBRULE2(this.andExpr, { LABEL: 'operands' });
    });
  });

  andExpr = this.RULE('andExpr', () => {
    this.SUBRULE(this.notExpr, { LABEL: 'operands' });
    this.MANY(() => {
      this.CONSUME(T.And);
      this.SUBRULE2(this.notExpr, { LABEL: 'operands' });
    });
  });

  /** `not` repeats in a loop, not by recursion, so `not not ... x` cannot overflow. */
  notExpr = this.RULE('notExpr', () => {
    this.MANY(() => this.CONSUME(T.Not));
    this.SUBRULE(this.primary);
  });

  primary = this.RULE('primary', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.LParen);
          this.SUBRULE(this.orExpr);
          this.CONSUME(T.RParen);
        },
      },
      { ALT: () => this.CONSUME(T.True, { LABEL: 'always' }) },
      { ALT: () => this.CONSUME(T.Star, { LABEL: 'always' }) },
      { ALT: () => this.SUBRULE(this.membership) },
      { ALT: () => this.SUBRULE(this.comparison) },
    ]);
  });

  /** `size < 64KiB`, `name ~ "*.mkv"` */
  comparison = this.RULE('comparison', () => {
    this.CONSUME(T.Identifier, { LABEL: 'attr' });
    this.CONSUME(T.CmpOp, { LABEL: 'op' });
    const value = this.CONSUME(T.Value, { LABEL: 'value' });
    // `size > 1 gigs`: a word on the same line right after a number can only be a unit
    // attempt (what may follow a comparison is a keyword or punctuation). Taken here, it
    // costs one unknown-unit instead of a cascade of syntax errors through the rule.
    this.OPTION({
      GATE: () => isUnitAttempt(value, this.LA(1)),
      DEF: () => this.CONSUME2(T.Identifier, { LABEL: 'unit' }),
    });
  });

  /** `owner in ("alice", "bob")`, `name not in ("*.tmp")` */
  membership = this.RULE('membership', () => {
    this.CONSUME(T.Identifier, { LABEL: 'attr' });
    this.OPTION(() => this.CONSUME(T.Not, { LABEL: 'not' }));
    this.CONSUME(T.In, { LABEL: 'op' });
    this.CONSUME(T.LParen);
    this.CONSUME(T.Value, { LABEL: 'items' });
    this.MANY(() => {
      this.CONSUME(T.Comma);
      this.CONSUME2(T.Value, { LABEL: 'items' });
    });
    this.CONSUME(T.RParen);
  });
}

const VERBS = new Set(['keep', 'pin', 'unpin', 'archive', 'release']);

function isUnitAttempt(value: IToken, next: IToken): boolean {
  return (
    value?.tokenType === T.NumberLit &&
    next?.tokenType === T.Identifier &&
    next.startLine === value.endLine &&
    !VERBS.has(next.image) // `uid == 5 keep`: a missing '->', not a unit
  );
}

// One instance: performSelfAnalysis is the expensive part and the parser is reusable.
let shared: PolicyParser | undefined;

export function parseDeclaration(tokens: IToken[]): { cst: CstNode; errors: IRecognitionException[] } {
  shared ??= new PolicyParser();
  shared.input = tokens;
  const cst = shared.declaration();
  return { cst, errors: [...shared.errors] };
}
